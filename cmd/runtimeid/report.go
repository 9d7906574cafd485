package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/policy/config"
)

// replayEngine is one policy's engine and what it decided.
type replayEngine struct {
	title      string
	built      *config.Built
	outcomes   map[string]int
	rules      map[outcomeRule]int
	reportOnly map[outcomeRule]int
	findings   map[string]int
	challenged map[string]int
}

func newReplayEngine(title string, b *config.Built) *replayEngine {
	return &replayEngine{title: title, built: b, outcomes: map[string]int{},
		rules: map[outcomeRule]int{}, reportOnly: map[outcomeRule]int{},
		findings: map[string]int{}, challenged: map[string]int{}}
}

func (e *replayEngine) count(ev *runtimeid.Evaluation) {
	d := &ev.Decision
	e.outcomes[d.Outcome.String()]++
	e.rules[outcomeRule{d.Outcome.String(), d.Rule}]++
	for _, m := range d.ReportOnly {
		e.reportOnly[outcomeRule{m.Outcome.String(), m.Rule}]++
	}
	for _, f := range ev.Assessment.Findings {
		e.findings[f.Code]++
	}
	if d.Outcome == runtimeid.Challenge && ev.Identity != nil {
		e.challenged[ev.Identity.Subject]++
	}
}

// report prints what each policy would have done, and the difference.
func (r *replayer) report(w io.Writer, top int) {
	fmt.Fprintf(w, "Replayed %d %s (%d malformed %s skipped)",
		r.requests, plural(r.requests, "request"), r.skipped, plural(r.skipped, "line"))
	if r.requests > 0 {
		fmt.Fprintf(w, ", %s to %s UTC", r.first.Format("2006-01-02 15:04"),
			r.last.Format("2006-01-02 15:04"))
	}
	fmt.Fprintln(w, ", report-only: nothing was enforced.")
	for _, e := range r.engines {
		fmt.Fprintln(w)
		e.report(w, top)
	}
	if len(r.engines) == 2 {
		fmt.Fprintln(w)
		r.reportChanges(w)
	}
}

func (e *replayEngine) report(w io.Writer, top int) {
	fmt.Fprintln(w, e.title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, o := range []string{"allow", "challenge", "block"} {
		fmt.Fprintf(tw, "  %s\t%d\t\n", o, e.outcomes[o])
	}
	tw.Flush()

	fmt.Fprintln(w, "Outcomes per rule:")
	table(w, "RULE\tOUTCOME\tREQUESTS", sortedRules(e.rules), 0)
	if len(e.reportOnly) > 0 {
		fmt.Fprintln(w, "Report-only rules that matched:")
		table(w, "RULE\tOUTCOME\tREQUESTS", sortedRules(e.reportOnly), 0)
	}
	fmt.Fprintf(w, "Top findings:\n")
	table(w, "FINDING\tREQUESTS", sortedCounts(e.findings), top)
	fmt.Fprintf(w, "Subjects challenged most:\n")
	table(w, "SUBJECT\tCHALLENGES", sortedCounts(e.challenged), top)
}

func (r *replayer) reportChanges(w io.Writer) {
	total := 0
	rows := make([]row, 0, len(r.changes))
	for k, n := range r.changes {
		total += n
		rows = append(rows, row{[]string{k[0].outcome + "/" + k[0].rule,
			k[1].outcome + "/" + k[1].rule}, n})
	}
	sortRows(rows)
	fmt.Fprintf(w, "Changes from current to candidate: %d %s\n",
		total, plural(total, "request"))
	table(w, "CURRENT\tCANDIDATE\tREQUESTS", rows, 0)
}

// row is one line of a table: its cells and a count.
type row struct {
	cells []string
	n     int
}

func sortRows(rows []row) {
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(b.n, a.n), slices.Compare(a.cells, b.cells))
	})
}

func sortedRules(m map[outcomeRule]int) []row {
	rows := make([]row, 0, len(m))
	for k, n := range m {
		rows = append(rows, row{[]string{k.rule, k.outcome}, n})
	}
	sortRows(rows)
	return rows
}

func sortedCounts(m map[string]int) []row {
	rows := make([]row, 0, len(m))
	for k, n := range m {
		rows = append(rows, row{[]string{k}, n})
	}
	sortRows(rows)
	return rows
}

// table prints rows under a header, at most limit of them (0: all).
func table(w io.Writer, header string, rows []row, limit int) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+header)
	for _, r := range rows {
		fmt.Fprint(tw, "  ")
		for _, c := range r.cells {
			fmt.Fprint(tw, c+"\t")
		}
		fmt.Fprintf(tw, "%d\n", r.n)
	}
	tw.Flush()
}
