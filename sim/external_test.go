package sim

import (
	"testing"
	"time"
)

func TestCheckKVTellsLinearizableFromNot(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	good := []KVOp{
		{Client: 1, Key: "r", Value: "a", Rev: 1, Call: at(0), Return: at(10)},
		{Client: 2, Get: true, Key: "r", Value: "a", Found: true, Rev: 1, Call: at(20), Return: at(30)},
		{Client: 1, Key: "r", Value: "b", Unknown: true, Call: at(40)},
		{Client: 2, Get: true, Key: "r", Value: "b", Found: true, Rev: 2, Call: at(50), Return: at(60)},
	}
	if ok, _ := CheckKV(good, time.Second); !ok {
		t.Fatal("a linearizable history was refused")
	}
	stale := append(good[:2:2],
		KVOp{Client: 1, Key: "r", Value: "b", Rev: 2, Call: at(40), Return: at(45)},
		KVOp{Client: 2, Get: true, Key: "r", Value: "a", Found: true, Rev: 1, Call: at(50), Return: at(60)})
	if ok, _ := CheckKV(stale, time.Second); ok {
		t.Fatal("a stale read after an acknowledged write passed")
	}
}
