package config

import (
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
