package redisstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// redisAddr is the address of the Redis the tests share, from
// RUNTIMEID_REDIS_ADDR (default 127.0.0.1:6379). When it does not
// answer, the test fails under CI=true and is skipped otherwise.
func redisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("RUNTIMEID_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		msg := fmt.Sprintf("no redis-server at %s (set RUNTIMEID_REDIS_ADDR): %v", addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return addr
}

func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix keeps each test's keys apart in the shared Redis.
func testPrefix(t testing.TB) string {
	return "test:" + t.Name() + ":" + rand.Text()[:8] + ":"
}

// newStore builds a store; edit changes its options.
func newStore(t testing.TB, c redis.UniversalClient, prefix string,
	edit func(*Options)) *Store {
	t.Helper()
	o := Options{Client: c, Prefix: prefix, FlushInterval: 5 * time.Millisecond,
		ProbeInterval: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if edit != nil {
		edit(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := New(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// sharedStores builds the stores of n instances of one service on the
// shared Redis, with the clock now.
func sharedStores(t testing.TB, n int, now func() time.Time) []*Store {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	out := make([]*Store, n)
	for i := range out {
		out[i] = newStore(t, newClient(t, addr), prefix, func(o *Options) { o.Now = now })
	}
	return out
}

// eventually polls cond until it holds or the deadline passes, and
// returns how long it took.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for correctness
	}
	return time.Since(start)
}

// server is a redis-server this test runs itself, so it can stop and
// restart it. It keeps its data in an append-only file, as a
// production Redis would, so a restart loses nothing written.
type server struct {
	t    testing.TB
	path string
	addr string
	port string
	dir  string
	cmd  *exec.Cmd
}

func startServer(t testing.TB) *server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not on PATH")
		}
		t.Skip("redis-server not on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	require.NoError(t, l.Close())
	s := &server{t: t, path: path, addr: "127.0.0.1:" + port, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.path, "--port", s.port, "--bind", "127.0.0.1",
		"--dir", s.dir, "--save", "", "--appendonly", "yes",
		"--appendfsync", "always", "--logfile", filepath.Join(s.dir, "log"))
	require.NoError(s.t, s.cmd.Start())
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	eventually(s.t, 5*time.Second, "redis-server up", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// quiet discards go-redis's own log of refused dials, which the outage
// test provokes on purpose.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}
