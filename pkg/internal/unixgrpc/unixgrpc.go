// Package unixgrpc dials the gRPC services node components serve on unix
// sockets (containerd's CRI, the kubelet's device-plugin registration and
// PodResources), which grpc's default resolver does not dial by path.
package unixgrpc

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Dial returns a client connection to the unix socket at path (plaintext,
// as every node-local gRPC service is). It connects lazily.
func Dial(path string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+path, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}))
}
