package localcluster

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestEtcdProxy: bytes pass through; Pause holds them until Resume;
// SetDelay slows them; DropConnections cuts the connection.
func TestEtcdProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(strings.ToUpper(line))); err != nil {
						return
					}
				}
			}()
		}
	}()
	p := NewEtcdProxy()
	u, err := p.start("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(s string) (string, time.Duration, error) {
		start := time.Now()
		if _, err := c.Write([]byte(s + "\n")); err != nil {
			return "", 0, err
		}
		line, err := r.ReadString('\n')
		return strings.TrimSpace(line), time.Since(start), err
	}
	if got, _, err := echo("hello"); err != nil || got != "HELLO" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	p.Pause()
	time.AfterFunc(500*time.Millisecond, p.Resume)
	if got, d, err := echo("held"); err != nil || got != "HELD" || d < 400*time.Millisecond {
		t.Errorf("paused: %q after %v (%v), want HELD after the 500ms pause", got, d, err)
	}
	p.SetDelay(100 * time.Millisecond)
	if got, d, err := echo("slow"); err != nil || got != "SLOW" || d < 200*time.Millisecond {
		t.Errorf("delayed: %q after %v (%v), want SLOW after two 100ms chunk delays", got, d, err)
	}
	p.SetDelay(0)
	if n := p.DropConnections(); n != 2 {
		t.Errorf("dropped %d connections, want 2 (both sides of one)", n)
	}
	if _, _, err := echo("gone"); err == nil {
		t.Error("a dropped connection still answers")
	}
}
