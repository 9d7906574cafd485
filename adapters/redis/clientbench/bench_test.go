package clientbench

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

const batch = 100

var seq atomic.Uint64

func addr(b *testing.B) string {
	a := os.Getenv("RUNTIMEID_REDIS_ADDR")
	if a == "" {
		a = "127.0.0.1:6379"
	}
	c := goredis.NewClient(&goredis.Options{Addr: a})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		b.Skipf("no redis at %s: %v", a, err)
	}
	return a
}

func goClient(b *testing.B) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr(b)})
	b.Cleanup(func() { c.Close() })
	return c
}

func rueClient(b *testing.B) rueidis.Client {
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{addr(b)}, DisableCache: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// run keeps keys of one run apart from the last run's, which live a
// minute.
var run = strconv.FormatInt(time.Now().UnixNano(), 36) + ":"

func key(p string) string {
	return p + run + strconv.FormatUint(seq.Add(1), 10)
}

func BenchmarkSetNXPX(b *testing.B) {
	ctx := context.Background()
	b.Run("go-redis", func(b *testing.B) {
		c := goClient(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				err := c.SetArgs(ctx, key("bench:g:"), "1",
					goredis.SetArgs{Mode: "NX", TTL: time.Minute}).Err()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("rueidis", func(b *testing.B) {
		c := rueClient(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cmd := c.B().Set().Key(key("bench:r:")).Value("1").
					Nx().Px(time.Minute).Build()
				if err := c.Do(ctx, cmd).Error(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

var blob = string(make([]byte, 600))

func BenchmarkPipeline100(b *testing.B) {
	ctx := context.Background()
	b.Run("go-redis", func(b *testing.B) {
		c := goClient(b)
		for b.Loop() {
			_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for range batch {
					k := key("bench:gp:")
					p.HSet(ctx, k, "v", 1, "p", blob)
					p.PExpire(ctx, k, time.Minute)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rueidis", func(b *testing.B) {
		c := rueClient(b)
		cmds := make(rueidis.Commands, 0, 2*batch)
		for b.Loop() {
			cmds = cmds[:0]
			for range batch {
				k := key("bench:rp:")
				cmds = append(cmds,
					c.B().Hset().Key(k).FieldValue().FieldValue("v", "1").
						FieldValue("p", blob).Build(),
					c.B().Pexpire().Key(k).Milliseconds(60000).Build())
			}
			for _, r := range c.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

func BenchmarkPubSubRoundTrip(b *testing.B) {
	ctx := context.Background()
	b.Run("go-redis", func(b *testing.B) {
		c := goClient(b)
		sub := c.Subscribe(ctx, "bench:ch:g")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			b.Fatal(err)
		}
		ch := sub.Channel()
		for b.Loop() {
			if err := c.Publish(ctx, "bench:ch:g", blob).Err(); err != nil {
				b.Fatal(err)
			}
			<-ch
		}
	})
	b.Run("rueidis", func(b *testing.B) {
		c := rueClient(b)
		got := make(chan struct{}, 1)
		sub := c.B().Subscribe().Channel("bench:ch:r").Build()
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ready := make(chan struct{})
		go c.Receive(sctx, sub, func(rueidis.PubSubMessage) { got <- struct{}{} })
		go func() {
			// Receive has no "subscribed" callback: publish until one
			// message arrives.
			for {
				c.Do(ctx, c.B().Publish().Channel("bench:ch:r").Message("x").Build())
				select {
				case <-got:
					close(ready)
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
		<-ready
		for b.Loop() {
			cmd := c.B().Publish().Channel("bench:ch:r").Message(blob).Build()
			if err := c.Do(ctx, cmd).Error(); err != nil {
				b.Fatal(err)
			}
			<-got
		}
	})
}
