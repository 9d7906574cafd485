// Command riskeval replays a population built from a real web server
// access log through the risk evaluators, with attacks injected, and
// reports how many attacks each set of evaluators stops and how many
// legitimate requests it challenges. See README.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
)

func main() {
	path := flag.String("log", "examples/riskeval/data/apache_logs",
		"access log to build the population from")
	flag.Parse()
	if err := run(os.Stdout, *path); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer, path string) error {
	p, err := loadPopulation(path)
	if err != nil {
		return err
	}
	var results []*Result
	for _, m := range []Mode{Rules, Model, Combined} {
		r, err := Run(p, m)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	report(w, p, results)
	return nil
}

func report(w io.Writer, p *population, results []*Result) {
	r0 := results[0]
	fmt.Fprintf(w, "%d log lines, %d users (clients), %d bot addresses left out\n",
		p.lines, p.users, p.bots)
	fmt.Fprintf(w, "%d legitimate requests, %d attacks\n\n", r0.Legit, r0.Attacks)
	fmt.Fprintf(w, "| evaluators | attacks stopped | legitimate challenged | ROC AUC |\n")
	fmt.Fprintf(w, "|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %.2f%% | %.2f%% | %.4f |\n", r.Mode,
			100*r.AttackStopRate(), 100*r.LegitChallengeRate(), r.AUC)
	}
	fmt.Fprintf(w, "\n| attack | %s | %s | %s |\n|---|---|---|---|\n",
		results[0].Mode, results[1].Mode, results[2].Mode)
	kinds := make([]string, 0, len(r0.Stopped))
	for k := range r0.Stopped {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "| %s (%d) |", k, r0.Stopped[k][1])
		for _, r := range results {
			s := r.Stopped[k]
			fmt.Fprintf(w, " %.2f%% |", 100*float64(s[0])/float64(s[1]))
		}
		fmt.Fprintln(w)
	}
}
