package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/sniff"
)

// profileSniff runs the sniffer in this process on capture, writing JSONL to a file
// in dir as `wstap sniff --log` does, under the CPU profiler; then writes a heap
// profile. Both go to dir (cpu.pprof, heap.pprof).
func profileSniff(capture, dir string) error {
	src, err := sniff.OpenFile(capture)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.Create(filepath.Join(dir, "profile.jsonl"))
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return err
	}
	defer cpu.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	j := eventlog.NewJSONL(out, eventlog.Block)
	s := sniff.New(sniff.Config{Observers: []plugins.Observer{j}})
	start := time.Now()
	err = s.Run(context.Background(), src)
	j.Close()
	took := time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.GC() // the allocation profile is as of the last GC
	heap, err := os.Create(filepath.Join(dir, "heap.pprof"))
	if err != nil {
		return err
	}
	defer heap.Close()
	if err := pprof.Lookup("allocs").WriteTo(heap, 0); err != nil {
		return err
	}
	fmt.Printf("[pprof]   in-process sniff + JSONL: %s, %s allocated in %d objects, %d GCs, heap sys %s; profiles in %s (go tool pprof -top %s)\n",
		took.Round(time.Millisecond), mb(int64(after.TotalAlloc-before.TotalAlloc)), after.Mallocs-before.Mallocs,
		after.NumGC-before.NumGC, mb(int64(after.HeapSys)), dir, filepath.Join(dir, "cpu.pprof"))
	return nil
}
