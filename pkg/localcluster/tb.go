package localcluster

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// programTB lets a program (the playground) use upstream's API server test
// harness, which takes a ktesting.TB rather than *testing.T. Log output goes
// to a writer; fatal errors abort the harness with a panic that Start turns
// back into an error; cleanups run on Close in reverse order, like t.Cleanup.
type programTB struct {
	mu       sync.Mutex
	name     string
	log      io.Writer
	failed   bool
	cleanups []func()
	tmpDirs  []string
}

type fatalError struct{ msg string }

func newProgramTB(name string, log io.Writer) *programTB {
	if log == nil {
		log = io.Discard
	}
	return &programTB{name: name, log: log}
}

func (t *programTB) Attr(key, value string) {}
func (t *programTB) Chdir(dir string)       { panic("localcluster: Chdir is not supported outside tests") }
func (t *programTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *programTB) Error(args ...any) { t.Log(args...); t.Fail() }
func (t *programTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.Fail()
}
func (t *programTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}
func (t *programTB) FailNow() { t.Fail(); panic(fatalError{"FailNow"}) }
func (t *programTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *programTB) Fatal(args ...any) { t.Fail(); panic(fatalError{fmt.Sprint(args...)}) }
func (t *programTB) Fatalf(format string, args ...any) {
	t.Fail()
	panic(fatalError{fmt.Sprintf(format, args...)})
}
func (t *programTB) Helper()                          {}
func (t *programTB) Log(args ...any)                  { fmt.Fprintln(t.log, args...) }
func (t *programTB) Logf(format string, args ...any)  { fmt.Fprintf(t.log, format+"\n", args...) }
func (t *programTB) Name() string                     { return t.name }
func (t *programTB) Setenv(key, value string)         { os.Setenv(key, value) }
func (t *programTB) Skip(args ...any)                 { t.Log(args...); t.SkipNow() }
func (t *programTB) Skipf(format string, args ...any) { t.Logf(format, args...); t.SkipNow() }
func (t *programTB) SkipNow()                         { panic(fatalError{"skip"}) }
func (t *programTB) Skipped() bool                    { return false }
func (t *programTB) TempDir() string {
	d, err := os.MkdirTemp("", "tessera-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.mu.Lock()
	t.tmpDirs = append(t.tmpDirs, d)
	t.mu.Unlock()
	return d
}

// Close runs the registered cleanups, newest first, then removes temp dirs.
func (t *programTB) Close() {
	t.mu.Lock()
	cleanups, dirs := t.cleanups, t.tmpDirs
	t.cleanups, t.tmpDirs = nil, nil
	t.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}
