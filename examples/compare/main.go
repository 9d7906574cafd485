// Command compare measures runtimeid against the stacks a Go team would
// otherwise use, on the same request in one process: a bare chi route,
// go-chi/jwtauth, jwtauth with an embedded OPA policy, cedar-go, and
// runtimeid's full pipeline. It prints each one's time and allocations
// per request and the ratios. See BENCHMARKS.md at the repository root.
//
//	go run .                  # the side-by-side table
//	go run . -loadtest        # req/s and latency over loopback HTTP
//	taskset -c 0 go run . -loadtest -loadcpus 1   # server and load apart
//
// It is its own module so that OPA, cedar-go and jwtauth stay out of the
// library's dependencies.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

func main() {
	root := flag.String("root", "../..", "the runtimeid repository, for its test data")
	rounds := flag.Int("rounds", 7, "rounds of the side-by-side measurement")
	per := flag.Duration("per", 300*time.Millisecond, "time per contender and round")
	loadtest := flag.Bool("loadtest", false, "serve on loopback and load from a second process")
	target := flag.String("load", "", "be the load process: the loopback URL to load")
	conc := flag.Int("c", 16, "concurrent connections of the load process")
	dur := flag.Duration("d", 5*time.Second, "how long the load process runs, per server")
	prof := flag.String("cpuprofile", "", "write a CPU profile of this process to the file")
	loadCPUs := flag.String("loadcpus", "",
		"run the load process under taskset -c with this CPU list")
	flag.Parse()

	if *prof != "" {
		stop, err := startProfile(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		defer stop()
	}

	if err := run(*root, *rounds, *per, *loadtest, *target, *conc, *dur, *loadCPUs); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1) // a failed run leaves no profile
	}
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func run(root string, rounds int, per time.Duration, loadtest bool,
	target string, conc int, dur time.Duration, loadCPUs string) error {
	if target != "" {
		return load(os.Stdout, target, conc, dur)
	}
	ctx := context.Background()
	f, err := newFixture(root)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s/%s, GOMAXPROCS %d\n\n", runtime.Version(),
		runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	if loadtest {
		return loadTest(ctx, f, conc, dur, loadCPUs)
	}
	cs, err := contenders(ctx, f)
	if err != nil {
		return err
	}
	rs, err := measure(cs, f.request(), rounds, per)
	if err != nil {
		return err
	}
	report(os.Stdout, rs)
	return nil
}
