package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// maxLine bounds one log line; longer lines are skipped and counted.
const maxLine = 64 << 10

// record is one request of recorded traffic.
type record struct {
	Time      time.Time
	IP        netip.Addr
	Method    string
	Path      string
	UserAgent string
	Subject   string // empty when the log does not say
}

// The log formats replay reads.
const (
	formatAuto     = "auto"     // JSON for lines starting with "{", else combined
	formatCombined = "combined" // Apache and nginx combined
	formatJSON     = "json"     // JSON lines
)

// combined is the Apache and nginx "combined" format:
// addr ident user [time] "method target proto" status size "referer" "agent"
var combined = regexp.MustCompile(
	`^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" \d{3} \S+ ` +
		`"(?:[^"\\]|\\.)*" "((?:[^"\\]|\\.)*)"`)

const combinedTime = "02/Jan/2006:15:04:05 -0700"

var errMalformed = errors.New("malformed line")

// parseLine parses one line in the given format.
func parseLine(line []byte, format string) (record, error) {
	line = bytes.TrimRight(line, "\r")
	if format == formatJSON || format == formatAuto && bytes.HasPrefix(line, []byte("{")) {
		return parseJSONLine(line)
	}
	return parseCombined(line)
}

func parseCombined(line []byte) (record, error) {
	m := combined.FindSubmatch(line)
	if m == nil {
		return record{}, errMalformed
	}
	at, err := time.Parse(combinedTime, string(m[2]))
	if err != nil {
		return record{}, fmt.Errorf("%w: time: %w", errMalformed, err)
	}
	r := record{Time: at.UTC(), Method: string(m[3]), Path: string(m[4]),
		UserAgent: strings.ReplaceAll(string(m[5]), `\"`, `"`)}
	if r.IP, err = netip.ParseAddr(string(m[1])); err != nil {
		return record{}, fmt.Errorf("%w: address: %w", errMalformed, err)
	}
	return r, nil
}

// jsonLine is one request of a JSON lines log. Other members are
// ignored, so richer logs can be replayed as they are.
type jsonLine struct {
	Time      time.Time `json:"time"`
	IP        string    `json:"ip"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	UserAgent string    `json:"user_agent"`
	Subject   string    `json:"subject"`
}

func parseJSONLine(line []byte) (record, error) {
	var j jsonLine
	if err := json.Unmarshal(line, &j); err != nil {
		return record{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	ip, err := netip.ParseAddr(j.IP)
	switch {
	case err != nil:
		return record{}, fmt.Errorf("%w: ip: %w", errMalformed, err)
	case j.Time.IsZero():
		return record{}, fmt.Errorf("%w: time: required", errMalformed)
	case !strings.HasPrefix(j.Path, "/"):
		return record{}, fmt.Errorf("%w: path: want an absolute path", errMalformed)
	}
	if j.Method == "" {
		j.Method = "GET"
	}
	return record{Time: j.Time.UTC(), IP: ip, Method: j.Method, Path: j.Path,
		UserAgent: j.UserAgent, Subject: j.Subject}, nil
}

// readLog calls fn for each request of the log, in order. Blank lines
// are ignored; malformed and overlong lines are skipped and counted.
func readLog(r io.Reader, format string, fn func(record) error) (skipped int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		line, tooLong, err := readLine(br, buf[:0])
		buf = line
		if len(line) > 0 || tooLong {
			switch rec, perr := parseLine(line, format); {
			case tooLong || perr != nil:
				skipped++
			default:
				if err := fn(rec); err != nil {
					return skipped, err
				}
			}
		}
		if err == io.EOF {
			return skipped, nil
		}
		if err != nil {
			return skipped, err
		}
	}
}

// readLine reads one line into buf, without its newline. A line over
// maxLine is read to its end and reported as tooLong, with no bytes.
func readLine(br *bufio.Reader, buf []byte) (line []byte, tooLong bool, err error) {
	for {
		part, isPrefix, err := br.ReadLine()
		if !tooLong {
			buf = append(buf, part...)
		}
		if len(buf) > maxLine {
			tooLong, buf = true, buf[:0]
		}
		if err != nil || !isPrefix {
			if tooLong {
				return nil, true, err
			}
			return buf, false, err
		}
	}
}
