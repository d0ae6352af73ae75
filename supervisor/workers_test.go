package supervisor

import (
	"testing"
	"time"

	"github.com/hasup/hasup/supervisor/host"
	"github.com/hasup/hasup/supervisor/worker"
)

func TestWorkerLeaseTravelsInTheRegistryType(t *testing.T) {
	s := &Supervisor{cfg: Config{TickInterval: 10 * time.Millisecond}}
	typ := workerEnsembleType(WorkerSpec{Name: "billing", Mode: worker.ModeSingleton, StopGrace: 500 * time.Millisecond})
	if typ != "worker:lease=1500ms" {
		t.Fatalf("type %q", typ)
	}
	var spec host.Spec
	s.tuneWorkerLease(&spec, typ)
	if spec.LeaseTicks != 150 || spec.ViewChangeTicks <= spec.LeaseTicks || spec.DriftMarginTicks < 2 || spec.DriftMarginTicks >= spec.LeaseTicks {
		t.Fatalf("tuned %+v", spec)
	}
	for _, typ := range []string{"kv", "worker", "worker:lease=", "worker:lease=-1s", "worker:lease=abc"} {
		var spec host.Spec
		s.tuneWorkerLease(&spec, typ)
		if spec.LeaseTicks != 0 {
			t.Errorf("type %q tuned the lease: %+v", typ, spec)
		}
	}
	if typ := workerEnsembleType(WorkerSpec{Mode: worker.ModeEvery}); typ != "worker" {
		t.Fatalf("every worker type %q", typ)
	}
	if _, err := s.newFSM("worker:lease=1500ms"); err != nil {
		t.Fatal(err)
	}
}
