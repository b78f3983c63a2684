package localcluster

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// EtcdProxy sits between kube-apiserver and etcd, so that a test can make
// etcd slow or unreachable without touching either: Pause holds every byte
// in both directions until Resume (etcd hangs, as in a long fsync or a
// network partition), SetDelay makes each chunk wait (a slow disk or
// link), DropConnections cuts every connection (etcd restarting). Give it
// to Start in Options.EtcdProxy.
type EtcdProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	delay  time.Duration
	paused chan struct{} // non-nil while paused; closed by Resume
	conns  map[net.Conn]struct{}
	closed bool
}

// NewEtcdProxy returns a proxy that forwards as soon as Start starts etcd.
func NewEtcdProxy() *EtcdProxy { return &EtcdProxy{conns: map[net.Conn]struct{}{}} }

// start listens on a free loopback port, forwards to target (a client URL)
// and returns the URL kube-apiserver is to use.
func (p *EtcdProxy) start(target string) (string, error) {
	u, err := freeLoopbackURL()
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return "", err
	}
	p.ln = ln
	p.target = target
	go p.accept()
	return "http://" + ln.Addr().String(), nil
}

func (p *EtcdProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		addr := p.target
		if len(addr) > 7 && addr[:7] == "http://" {
			addr = addr[7:]
		}
		up, err := net.Dial("tcp", addr)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			return
		}
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *EtcdProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies src to dst chunk by chunk, each chunk through the gate.
func (p *EtcdProxy) pipe(src, dst net.Conn) {
	defer func() {
		src.Close()
		dst.Close()
		p.mu.Lock()
		delete(p.conns, src)
		delete(p.conns, dst)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

// gate waits while the proxy is paused, then for the delay.
func (p *EtcdProxy) gate() {
	p.mu.Lock()
	paused, delay := p.paused, p.delay
	p.mu.Unlock()
	if paused != nil {
		<-paused
	}
	if delay > 0 {
		time.Sleep(delay)
	}
}

// Pause holds all traffic until Resume.
func (p *EtcdProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused == nil {
		p.paused = make(chan struct{})
	}
}

// Resume lets held traffic through.
func (p *EtcdProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
	}
}

// SetDelay makes every chunk wait d (0: none).
func (p *EtcdProxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// DropConnections closes every open connection; new ones are accepted.
func (p *EtcdProxy) DropConnections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	n := len(p.conns)
	p.conns = map[net.Conn]struct{}{}
	return n
}

// Close stops the proxy and closes its connections.
func (p *EtcdProxy) Close() error {
	p.Resume()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.DropConnections()
	if p.ln == nil {
		return fmt.Errorf("etcd proxy never started")
	}
	return p.ln.Close()
}
