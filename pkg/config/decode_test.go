package config

import (
	"reflect"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want int64
	}{
		{"plain bytes", "12", 12},
		{"zero", "0", 0},
		{"B suffix", "12B", 12},
		{"Ki", "1Ki", 1024},
		{"Mi", "256Mi", 256 << 20},
		{"Gi", "2Gi", 2 << 30},
		{"Ti", "1Ti", 1 << 40},
		{"KiB as Go writes it", "4KiB", 4096},
		{"MiB as Go writes it", "230MiB", 230 << 20},
		{"GiB", "1GiB", 1 << 30},
		{"TiB", "3TiB", 3 << 40},
		{"decimal K", "1K", 1000},
		{"decimal M", "5M", 5e6},
		{"decimal G", "1G", 1e9},
		{"decimal T", "2T", 2e12},
		{"largest int64", "9223372036854775807", 9223372036854775807},
		{"largest Ti", "8388607Ti", 8388607 << 40},
		{"Ti overflow", "8388608Ti", -1},
		{"decimal T overflow", "9223373T", -1},
		{"number overflow", "9223372036854775808", -1},
		{"empty", "", -1},
		{"unit only", "Mi", -1},
		{"lowercase unit", "1mi", -1},
		{"unknown unit", "1Pi", -1},
		{"fraction", "1.5Gi", -1},
		{"negative", "-1", -1},
		{"space before unit", "1 Mi", -1},
		{"leading space", " 1Mi", -1},
		{"exponent", "1e3", -1},
		{"KB is not a unit", "1KB", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseBytes(tc.in); got != tc.want {
				t.Errorf("ParseBytes(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeBuildersAndCache(t *testing.T) {
	p := mustLoad(t, newLoader(t), `-- berth.cue --
package berth

project: "shop"
builders: {
	default: "tcp://buildkit:1234"
	"linux/arm64": {address: "tcp://arm64:1234", tls: {ca: "ca.pem", cert: "c.pem", key: "k.pem", serverName: "arm64"}}
}
cache: {from: ["type=local,src=/c"], to: ["type=local,dest=/c", "type=registry,ref=r/c,mode=max"]}
services: api: main: "./cmd/api"
`)
	want := map[string]Builder{
		"default":     {Address: "tcp://buildkit:1234"},
		"linux/arm64": {Address: "tcp://arm64:1234", CACert: "ca.pem", Cert: "c.pem", Key: "k.pem", ServerName: "arm64"},
	}
	if !reflect.DeepEqual(p.Builders, want) {
		t.Errorf("builders %+v, want %+v", p.Builders, want)
	}
	if got := p.Fields["builders.linux/arm64"]; got.Line != 6 {
		t.Errorf("position of builders.linux/arm64: %v", got)
	}
	if !reflect.DeepEqual(p.Cache, Cache{From: []string{"type=local,src=/c"}, To: []string{"type=local,dest=/c", "type=registry,ref=r/c,mode=max"}}) {
		t.Errorf("cache %+v", p.Cache)
	}
}
