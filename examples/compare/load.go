package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// tokenEnv passes the bearer token to the load process, so that it does
// not show in the process list.
const tokenEnv = "COMPARE_LOAD_TOKEN"

// maxSamples bounds the latencies one load run keeps.
const maxSamples = 4 << 20

// loadResult is what the load process prints, as JSON.
type loadResult struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P90      float64 `json:"p90_us"`
	P99      float64 `json:"p99_us"`
}

// loadTest serves the bare chi route and the two runtimeid routes (the
// audit event encoded on the request path, and queued) on loopback in
// this process, and loads each in turn from a second process running
// this program with -load, pinned to loadCPUs when set.
func loadTest(ctx context.Context, f *fixture, conc int, dur time.Duration,
	loadCPUs string) error {
	cs, err := contenders(ctx, f)
	if err != nil {
		return err
	}
	results := map[string]loadResult{}
	for _, c := range []contender{cs[0], cs[len(cs)-2], cs[len(cs)-1]} {
		r, err := loadOne(c, f.token, conc, dur, loadCPUs)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		results[c.name] = r
		fmt.Printf("%-18s %9.0f req/s  p50 %6.0f us  p90 %6.0f us  p99 %6.0f us"+
			"  (%d requests, %d errors)\n",
			c.name, r.RPS, r.P50, r.P90, r.P99, r.Requests, r.Errors)
	}
	bare := results[cs[0].name].RPS
	fmt.Printf("\nruntimeid (sync audit) keeps %.1f%% of bare chi's requests per second\n",
		100*results[cs[len(cs)-2].name].RPS/bare)
	share := results["runtimeid"].RPS / bare
	fmt.Printf("runtimeid keeps %.1f%% of bare chi's requests per second "+
		"(target >= 85%%: %s)\n", 100*share, verdict(share >= 0.85))
	return nil
}

// loadOne serves c on a fresh loopback port and runs the load process
// against it, pinned with taskset to cpus when cpus is not empty.
func loadOne(c contender, token string, conc int, dur time.Duration,
	cpus string) (loadResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return loadResult{}, err
	}
	srv := &http.Server{Handler: c.handler, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	target := "http://" + ln.Addr().String() + route
	self, err := os.Executable()
	if err != nil {
		return loadResult{}, err
	}
	args := []string{self, "-load", target,
		"-c", fmt.Sprint(conc), "-d", dur.String()}
	if cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), tokenEnv+"="+token)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("load process: %w", err)
	}
	var r loadResult
	return r, json.Unmarshal(out, &r)
}

// load is the load process: conc workers send GETs to target over
// kept-alive connections for dur, and the result goes to w as JSON. It
// refuses any target that is not on the loopback interface.
func load(w io.Writer, target string, conc int, dur time.Duration) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return errors.New("load: the target must be a loopback address")
	}
	if conc < 1 || conc > 256 || dur <= 0 || dur > 2*time.Minute {
		return errors.New("load: -c must be 1..256 and -d at most 2m")
	}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: conc},
		Timeout:   10 * time.Second,
	}
	token := os.Getenv(tokenEnv)

	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			mine, bad := worker(client, target, token, deadline)
			mu.Lock()
			if len(lat)+len(mine) <= maxSamples {
				lat = append(lat, mine...)
			}
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	slices.Sort(lat)
	r := loadResult{
		Requests: len(lat), Errors: errs, Seconds: el,
		RPS: float64(len(lat)) / el,
		P50: pct(lat, 0.50), P90: pct(lat, 0.90), P99: pct(lat, 0.99),
	}
	return json.NewEncoder(w).Encode(r)
}

func worker(c *http.Client, target, token string, deadline time.Time) ([]time.Duration, int) {
	lat := make([]time.Duration, 0, 1<<14)
	bad := 0
	for time.Now().Before(deadline) && len(lat) < maxSamples {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("X-Forwarded-For", "2.125.160.216")
		req.Header.Set("User-Agent", browser)
		req.Header.Set("Authorization", "Bearer "+token)
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			bad++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			bad++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, bad
}

// pct is the q quantile of sorted, in microseconds.
func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(q*float64(len(sorted))))
	return float64(sorted[i].Microseconds())
}
