package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCasesRunAndReport runs every kind of case briefly: the measuring code
// works and reports what it measured (the figures themselves are for the
// benchmarks and cmd/hasup-bench).
func TestCasesRunAndReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real clusters")
	}
	f, err := MeasureFloor(t.TempDir(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if f.CommitP50 <= 0 || f.RTTP50 <= 0 || !strings.Contains(f.String(), "floor") {
		t.Fatalf("floor %+v", f)
	}
	for _, cs := range []Case{
		{Name: "load", Ensembles: 2, Clients: 8, Duration: 300 * time.Millisecond},
		{Name: "idle", Ensembles: 20, Duration: 300 * time.Millisecond},
	} {
		res, err := Run(context.Background(), t.TempDir(), cs)
		if err != nil {
			t.Fatalf("%s: %v", cs.Name, err)
		}
		t.Log(res)
		if cs.Clients > 0 && (res.Ops == 0 || res.P50 <= 0 || res.P99 < res.P50 || res.OpsPerS <= 0) {
			t.Fatalf("%s: %+v", cs.Name, res)
		}
		if cs.Clients == 0 && (res.BytesPerReplica == 0 || res.CPUPerS <= 0) {
			t.Fatalf("%s: %+v", cs.Name, res)
		}
	}
}

func benchCase(b *testing.B, cs Case) {
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), b.TempDir(), cs)
		if err != nil {
			b.Fatal(err)
		}
		if cs.Clients > 0 {
			b.ReportMetric(res.OpsPerS, "ops/s")
			b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
		} else {
			b.ReportMetric(float64(res.CPUPerEnsemble.Nanoseconds()), "cpu-ns/s/ensemble")
			b.ReportMetric(float64(res.BytesPerReplica), "B/replica")
		}
		b.ReportMetric(float64(res.CPUPerS.Microseconds()), "cpu-µs/s")
	}
}

// The node-runtime issue's cases; run with -benchtime=1x (each case runs
// for a fixed 3 s).
func BenchmarkOneEnsembleOneClient(b *testing.B)  { benchCase(b, Cases(3 * time.Second)[0]) }
func BenchmarkOneEnsemble256Clients(b *testing.B) { benchCase(b, Cases(3 * time.Second)[1]) }
func Benchmark16Ensembles256Clients(b *testing.B) { benchCase(b, Cases(3 * time.Second)[2]) }
func BenchmarkIdle1000Ensembles(b *testing.B)     { benchCase(b, Cases(3 * time.Second)[3]) }

func BenchmarkFloor(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f, err := MeasureFloor(b.TempDir(), 500)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(f.CommitP50.Microseconds()), "commit-p50-µs")
		b.ReportMetric(float64(f.RTTP50.Microseconds()), "rtt-p50-µs")
	}
}
