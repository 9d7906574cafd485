// Command runtimeid is the operators' tool for the runtimeid engine.
//
//	runtimeid policy check FILE...
//	runtimeid policy test [-config FILE] POLICY CASES
//	runtimeid replay [-config FILE] [-candidate POLICY] [-format F] LOG...
//	runtimeid serve -config FILE
//
// policy check compiles policies and reports every error with its file,
// line, rule and position. policy test runs test cases against a policy.
// replay feeds recorded traffic through the engine in report-only mode
// and prints what would have happened, beside a candidate policy. serve
// runs the engine as a reverse proxy in front of any HTTP service, with
// a live view of its decisions.
//
// Exit status: 0 on success, 1 when a check or test fails, 2 on a usage
// or configuration error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage:
  runtimeid policy check FILE...
  runtimeid policy test [-config FILE] POLICY CASES
  runtimeid replay [-config FILE] [-candidate POLICY] [-format auto|combined|json] LOG...
  runtimeid serve -config FILE
`

// errUsage marks an error of the command line or the configuration.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs one command and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "policy":
		err = runPolicy(rest, stdout, stderr)
	case "replay":
		err = runReplay(ctx, rest, stdout, stderr)
	case "serve":
		err = runServe(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	return exitStatus(err, stderr)
}

// errFailed is a check or test that failed; its details were printed.
var errFailed = errors.New("failed")

func exitStatus(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errFailed):
		return exitFail
	}
	fmt.Fprintln(stderr, "runtimeid:", err)
	if errors.Is(err, errUsage) {
		fmt.Fprint(stderr, usage)
	}
	return exitUsage
}

func runPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: policy needs check or test", errUsage)
	}
	switch args[0] {
	case "check":
		return policyCheck(args[1:], stdout)
	case "test":
		return policyTest(args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown policy command %q", errUsage, args[0])
}
