package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// The timeline groups steps by kind and platform, on the clock of the
// first step that ran, and leaves out the steps it does not name.
func TestTimeline(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	v := func(name string, from, to float64) *client.Vertex {
		s, e := t0.Add(time.Duration(from*float64(time.Second))), t0.Add(time.Duration(to*float64(time.Second)))
		return &client.Vertex{Name: name, Started: &s, Completed: &e}
	}
	ran := []*client.Vertex{
		v("[berth] go build svc-02 (linux/amd64)", 40, 44),
		v("[berth] Go 1.26.8 toolchain", 1, 3),
		v("[berth] go build std (linux/amd64, 118 packages)", 3, 38),
		v("[berth] go build shared (linux/amd64, 1 package)", 38, 39),
		v("[berth] go build svc-01 (linux/amd64)", 39, 42),
		v("[berth] go build std (linux/arm64, 118 packages)", 38, 80),
		v("[berth] go build svc-01 (linux/arm/v7)", 81, 84),
		v("[berth] source of svc-01", 1.5, 1.6),
		v("exporting to oci image format", 84, 88),
		v("exporting to oci image format", 44, 45),
		{Name: "[berth] go build svc-03 (linux/amd64)"}, // never started
	}
	want := []span{
		{"toolchain", 0, 2},
		{"std (linux/amd64)", 2, 37},
		{"shared (linux/amd64)", 37, 38},
		{"std (linux/arm64)", 37, 79},
		{"services (linux/amd64)", 38, 43},
		{"export", 43, 44},
		{"services (linux/arm/v7)", 80, 83},
		{"export", 83, 87},
	}
	got := timeline(ran)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("timeline:\n got %v\nwant %v", got, want)
	}
}
