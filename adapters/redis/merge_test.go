package redisstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/runtimeid/runtimeid/risk"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func TestMergeProfiles(t *testing.T) {
	a := &risk.Profile{FirstSeen: at(0), LastSeen: at(10), Requests: 3,
		Devices:  []risk.Seen[uint64]{{Key: 1, Count: 2, Last: at(10)}},
		ASNs:     []risk.Seen[uint32]{{Key: 7, Count: 3, Last: at(10)}},
		Location: risk.Location{Country: "GB", Time: at(10)}}
	a.Hours[5] = 3
	b := &risk.Profile{FirstSeen: at(5), LastSeen: at(20), Requests: 2,
		Devices: []risk.Seen[uint64]{
			{Key: 1, Count: 1, Last: at(20)}, {Key: 2, Count: 1, Last: at(15)}},
		Location: risk.Location{Country: "SE", Time: at(20)}}
	b.Hours[5] = 2

	m := mergeProfiles(a, b)
	want := &risk.Profile{FirstSeen: at(0), LastSeen: at(20), Requests: 5,
		Devices: []risk.Seen[uint64]{
			{Key: 1, Count: 3, Last: at(20)}, {Key: 2, Count: 1, Last: at(15)}},
		ASNs:     []risk.Seen[uint32]{{Key: 7, Count: 3, Last: at(10)}},
		Location: risk.Location{Country: "SE", Time: at(20)}}
	want.Hours[5] = 5
	assert.Equal(t, want, m)
	assert.Equal(t, uint64(3), a.Requests, "arguments unchanged")
	assert.Equal(t, uint32(1), b.Devices[0].Count, "arguments unchanged")
	assert.Equal(t, m, mergeProfiles(b, a), "commutative")
}

func TestMergeProfilesNil(t *testing.T) {
	p := &risk.Profile{Requests: 1}
	tests := []struct {
		name string
		a, b *risk.Profile
		want *risk.Profile
	}{
		{"both nil", nil, nil, nil},
		{"left nil", nil, p, p},
		{"right nil", p, nil, p},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeProfiles(tt.a, tt.b)
			assert.Equal(t, tt.want, got)
			if got != nil {
				assert.NotSame(t, p, got, "a copy")
			}
		})
	}
}

func TestMergeSeenKeepsBound(t *testing.T) {
	var a, b []risk.Seen[uint64]
	for i := range risk.MaxDevices {
		a = append(a, risk.Seen[uint64]{Key: uint64(i), Count: 1, Last: at(i)})
	}
	b = append(b, risk.Seen[uint64]{Key: 100, Count: 1, Last: at(100)},
		risk.Seen[uint64]{Key: 101, Count: 5, Last: at(101)})
	m := mergeSeen(a, b, risk.MaxDevices)
	assert.Len(t, m, risk.MaxDevices)
	assert.Equal(t, -1, indexOf(m, 0), "least recent dropped")
	assert.Equal(t, -1, indexOf(m, 1), "next least recent dropped")
	assert.Equal(t, uint64(101), m[len(m)-1].Key)
}

func TestMergeCountsSaturate(t *testing.T) {
	assert.Equal(t, ^uint32(0), addSat(^uint32(0)-1, 5))
	assert.Equal(t, uint32(7), addSat(3, 4))
}

func TestMergeHoursHalves(t *testing.T) {
	var a, b risk.HourHistogram
	a[0], b[0] = maxHourCount, 10
	a[1], b[1] = 4, 4
	h := mergeHours(&a, &b)
	assert.Equal(t, uint16((maxHourCount+10)/2), h[0])
	assert.Equal(t, uint16(4), h[1])
}
