// Command tessera-pause is the process of every pod sandbox in the local
// clusters of real nodes (`make e2e`, `tessera playground --real-nodes`),
// which cannot pull registry.k8s.io/pause: it holds the pod's namespaces
// open, reaps the zombies of processes that end up its children, and exits
// on SIGINT or SIGTERM, as upstream's pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
