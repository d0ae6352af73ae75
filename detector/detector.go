package detector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/hasup/hasup"
)

// serfEventBuffer is the length of the channel Serf sends its events on.
// Serf sends on it while holding its member lock, so it must never fill:
// the drain goroutine empties it at once, and this length (Serf's own
// internal forwarding buffer is 1024) absorbs bursts such as a whole cluster
// joining, and whatever Serf still sends after Shutdown, when nobody drains.
const serfEventBuffer = 1024

// Detector is one node's failure detector: a Serf agent whose membership
// changes come out as hasup.MemberEvents.
//
// Lifecycle: New starts Serf (listening, and draining its events at once);
// Run joins the configured peers and re-checks suspects until its context
// ends, then shuts down without leaving; Leave leaves gracefully and shuts
// down; Shutdown stops without leaving, so peers declare this node failed.
// All methods are safe for concurrent use.
type Detector struct {
	cfg  Config // a private, defaulted copy
	log  *slog.Logger
	serf *serf.Serf

	serfCh chan serf.Event        // Serf -> drain
	out    chan hasup.MemberEvent // publish -> the consumer; closed by Shutdown
	wake   chan struct{}          // drain, observeLog, poll -> publish; length 1
	done   chan struct{}          // closed by Shutdown
	wg     sync.WaitGroup         // drain and publish

	running      atomic.Bool
	shutdownOnce sync.Once
	shutdownErr  error

	mu      sync.Mutex // guards the fields below; never held while calling Serf
	pending *pendingQueue
	last    map[hasup.NodeID]hasup.Member // each member's last state put in pending
	suspect map[hasup.NodeID]bool         // alive in Serf, but our probe failed since
}

// maxSuspectPings bounds the pings one poll sends to suspected members (the
// rest wait for the next poll), so that a mass suspicion cannot flood the
// network or delay Run.
const maxSuspectPings = 16

// New validates cfg, then creates and starts Serf: it listens, and drains
// Serf's events into Events at once. It does not join anyone; Run does, or
// Join. cfg is copied and never modified.
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Detector{
		cfg:     cfg,
		log:     cfg.Logger.With("node", string(cfg.NodeName)),
		serfCh:  make(chan serf.Event, serfEventBuffer),
		out:     make(chan hasup.MemberEvent, cfg.EventBuffer),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: newPendingQueue(),
		last:    make(map[hasup.NodeID]hasup.Member),
		suspect: make(map[hasup.NodeID]bool),
	}
	d.wg.Add(2)
	go d.drain()
	go d.publish()

	sc := serfConfig(cfg, serfTags(cfg.Tags, cfg.RPCAddr), d.serfCh, serfLogger(cfg.Logger, d.observeLog))
	s, err := serf.Create(sc)
	if err != nil {
		close(d.done)
		d.wg.Wait()
		addr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort))
		return nil, fmt.Errorf("detector: start serf for %s on %s: %w", cfg.NodeName, addr, err)
	}
	d.serf = s
	d.log.Info("detector started", "addr", d.Addr(), "profile", string(cfg.Profile),
		"encrypted", len(cfg.EncryptKey) > 0)
	return d, nil
}

// Run joins the configured peers (retrying with capped exponential backoff
// and jitter until one join succeeds) and, every probe interval, pings the
// members this node holds suspect to see whether they are back, until ctx
// ends or the detector is shut down. When ctx ends, Run shuts the detector
// down WITHOUT leaving (call Leave first for a graceful exit) and returns
// the shutdown's error, normally nil. Run may be called once; it returns
// ErrRunning the second time and ErrShutdown after Shutdown. Its return can
// wait for a join attempt in flight: at most the profile's TCP timeout per
// address.
func (d *Detector) Run(ctx context.Context) error {
	if d.isShutdown() {
		return ErrShutdown
	}
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	joinCtx, cancelJoin := context.WithCancel(ctx)
	var joinWG sync.WaitGroup
	if len(d.cfg.Join) > 0 {
		joinWG.Go(func() { d.joinWithRetry(joinCtx) })
	}
	defer joinWG.Wait()
	defer cancelJoin()

	ticker := time.NewTicker(timingsFor(d.cfg.Profile).probeInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.Shutdown()
		case <-d.done:
			return nil
		case <-ticker.C:
			d.pollSuspects()
		}
	}
}

// Events returns the channel of membership changes, the local node's own
// included. It is closed when the detector shuts down.
//
// Overflow policy: the channel holds Config.EventBuffer events. Serf is
// never blocked: its events are drained at once into a pending set holding
// at most one state per member. While the channel is full, a newer state of
// a member still pending replaces the older one (latest state wins), so a
// slow consumer misses intermediate states but never a member's final state,
// and memory stays bounded by the member count. Pending members are
// delivered in the order they first became pending, members of one Serf
// event in ID order. Events still pending at Shutdown are dropped. Events
// are hints: read Members for the current state.
func (d *Detector) Events() <-chan hasup.MemberEvent { return d.out }

// Members returns every member Serf knows, this node included, sorted by
// ID, with its current state. Failed and left members stay listed until Serf
// reaps them (see the profiles), so callers filter on State.
func (d *Detector) Members() []hasup.Member {
	sms := d.serf.Members()
	var out []hasup.Member
	d.mu.Lock()
	for _, sm := range sms {
		m, ok := toMember(sm)
		if !ok {
			continue
		}
		if m.State == hasup.MemberAlive && d.suspect[m.ID] {
			m.State = hasup.MemberSuspect
		}
		out = append(out, m)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b hasup.Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// NumAlive returns how many members, this node included, are MemberAlive
// (suspected members are not counted).
func (d *Detector) NumAlive() int {
	n := 0
	for _, m := range d.Members() {
		if m.State == hasup.MemberAlive {
			n++
		}
	}
	return n
}

// LocalMember returns this node as the cluster sees it.
func (d *Detector) LocalMember() hasup.Member {
	m, _ := toMember(d.serf.LocalMember())
	return m
}

// Addr returns the host:port other nodes join to reach this one: the
// advertised address (BindAddr unless AdvertiseAddr or a 0.0.0.0 bind says
// otherwise) with the port actually bound, which is how a test learns the
// port the kernel chose for BindPort 0.
func (d *Detector) Addr() string {
	n := d.serf.Memberlist().LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Join joins the cluster through any of addrs (host:port) once, without
// retrying, and returns how many it reached. The error is non-nil only if
// none was reached.
func (d *Detector) Join(addrs []string) (int, error) {
	if d.isShutdown() {
		return 0, ErrShutdown
	}
	n, err := d.serf.Join(addrs, true)
	if err != nil {
		return n, fmt.Errorf("detector: join %s: %w", strings.Join(addrs, ","), err)
	}
	return n, nil
}

// Leave leaves the cluster gracefully: it broadcasts the leave, waits for
// it to go out and to propagate (usually 0.1 s with the local profile and
// 1 s with lan; at most two broadcast timeouts plus that, 2.1 s and 11 s),
// then shuts down. Peers report this node MemberLeft, not MemberFailed.
func (d *Detector) Leave() error {
	if d.isShutdown() {
		return ErrShutdown
	}
	var errs []error
	if err := d.serf.Leave(); err != nil {
		errs = append(errs, fmt.Errorf("detector: leave: %w", err))
	}
	errs = append(errs, d.Shutdown())
	return errors.Join(errs...)
}

// ForceLeave tells the cluster that the failed member id has left for good,
// so Serf stops trying to reconnect to it and reports it MemberLeft. A
// member that is in fact alive refutes it and stays.
func (d *Detector) ForceLeave(id hasup.NodeID) error {
	if d.isShutdown() {
		return ErrShutdown
	}
	if err := d.serf.RemoveFailedNode(string(id)); err != nil {
		return fmt.Errorf("detector: force-leave %s: %w", id, err)
	}
	return nil
}

// SetTags replaces this node's user tags and gossips them; peers see the
// member re-emitted with its current state. Keys may not start with
// ReservedTagPrefix. It waits for the broadcast, bounded by the profile's
// broadcast timeout.
func (d *Detector) SetTags(tags map[string]string) error {
	if err := checkUserTags(tags); err != nil {
		return fmt.Errorf("detector: set tags: %w", err)
	}
	if d.isShutdown() {
		return ErrShutdown
	}
	if err := d.serf.SetTags(serfTags(tags, d.cfg.RPCAddr)); err != nil {
		return fmt.Errorf("detector: set tags: %w", err)
	}
	return nil
}

// Shutdown stops Serf without leaving (peers will declare this node
// failed), stops the detector's goroutines and closes Events. It is
// idempotent; later calls return the first call's result.
func (d *Detector) Shutdown() error {
	d.shutdownOnce.Do(func() {
		if err := d.serf.Shutdown(); err != nil {
			d.shutdownErr = fmt.Errorf("detector: shut down serf: %w", err)
		}
		close(d.done)
		d.wg.Wait()
		d.log.Info("detector stopped")
	})
	return d.shutdownErr
}

func (d *Detector) isShutdown() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// drain empties Serf's event channel as fast as Serf fills it: it only
// takes d.mu, which nobody holds while calling Serf, so it cannot deadlock
// with Serf's locks.
func (d *Detector) drain() {
	defer d.wg.Done()
	for {
		select {
		case e := <-d.serfCh:
			d.handleSerfEvent(e)
		case <-d.done:
			return
		}
	}
}

// handleSerfEvent records the states of one Serf member event. User events
// and queries are ignored: hasup uses neither. A reaped member is forgotten
// without an event: it was reported failed or left long before.
func (d *Detector) handleSerfEvent(e serf.Event) {
	me, ok := e.(serf.MemberEvent)
	if !ok {
		return
	}
	batch := make([]hasup.Member, 0, len(me.Members))
	d.mu.Lock()
	for _, sm := range me.Members {
		m, ok := toMember(sm)
		if !ok {
			continue
		}
		if me.Type == serf.EventMemberReap {
			delete(d.last, m.ID)
			delete(d.suspect, m.ID)
			continue
		}
		if m.State != hasup.MemberAlive || me.Type == serf.EventMemberJoin {
			delete(d.suspect, m.ID) // failed, left, or back with a new life
		}
		if m.State == hasup.MemberAlive && d.suspect[m.ID] {
			m.State = hasup.MemberSuspect // a tag update does not clear a suspicion
		}
		d.last[m.ID] = m
		batch = append(batch, m)
	}
	d.pending.put(batch...)
	d.mu.Unlock()
	d.signal()
}

// observeLog watches Serf's and memberlist's log lines for memberlist's
// report that this node's probe of a member failed, the only sign of a
// suspicion memberlist gives (see suspectLinePrefix). It runs on
// memberlist's goroutines and only takes d.mu.
func (d *Detector) observeLog(msg string) {
	name, ok := parseSuspectLine(msg)
	if !ok {
		return
	}
	id := hasup.NodeID(name)
	d.mu.Lock()
	m, known := d.last[id]
	suspected := known && m.State == hasup.MemberAlive
	if suspected {
		d.suspect[id] = true
		m.State = hasup.MemberSuspect
		d.last[id] = m
		d.pending.put(m)
	}
	d.mu.Unlock()
	if suspected {
		d.signal()
	}
}

// pollSuspects pings the members this node holds suspect, at most
// maxSuspectPings at once, and reports those that answer alive again (Serf
// reports no refuted suspicion). A suspect memberlist no longer lists has
// been declared dead, and Serf's failed event will follow, so it is not
// pinged. Each ping waits at most the profile's probe timeout.
func (d *Detector) pollSuspects() {
	d.mu.Lock()
	ids := slices.Sorted(maps.Keys(d.suspect))
	d.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ids = ids[:min(len(ids), maxSuspectPings)]
	ml := d.serf.Memberlist()
	addrs := make(map[hasup.NodeID]*net.UDPAddr)
	for _, n := range ml.Members() {
		addrs[hasup.NodeID(n.Name)] = &net.UDPAddr{IP: n.Addr, Port: int(n.Port)}
	}
	answered := make([]bool, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		if addr, ok := addrs[id]; ok {
			wg.Go(func() {
				_, err := ml.Ping(string(id), addr)
				answered[i] = err == nil
			})
		}
	}
	wg.Wait()

	var batch []hasup.Member
	d.mu.Lock()
	for i, id := range ids {
		m, known := d.last[id]
		if !answered[i] || !d.suspect[id] || !known || m.State != hasup.MemberSuspect {
			continue
		}
		delete(d.suspect, id)
		m.State = hasup.MemberAlive
		d.last[id] = m
		batch = append(batch, m)
	}
	d.pending.put(batch...)
	d.mu.Unlock()
	if len(batch) > 0 {
		d.signal()
	}
}

// signal wakes the publisher without ever blocking.
func (d *Detector) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// publish moves pending states to the bounded output channel, one at a
// time, blocking only itself when the channel is full; it closes the
// channel on shutdown.
func (d *Detector) publish() {
	defer d.wg.Done()
	defer close(d.out)
	for {
		select {
		case <-d.wake:
		case <-d.done:
			return
		}
		for {
			d.mu.Lock()
			m, ok := d.pending.pop()
			d.mu.Unlock()
			if !ok {
				break
			}
			select {
			case d.out <- hasup.MemberEvent{Member: m}:
			case <-d.done:
				return
			}
		}
	}
}

// joinWithRetry joins the configured peers until one join succeeds, ctx
// ends or the detector shuts down.
func (d *Detector) joinWithRetry(ctx context.Context) {
	rng := rand.New(rand.NewPCG(d.cfg.Seed, nameHash(d.cfg.NodeName)))
	for attempt := 0; ; attempt++ {
		n, err := d.Join(d.cfg.Join)
		if err == nil && n > 0 {
			d.log.Info("joined cluster", "contacted", n, "attempts", attempt+1)
			return
		}
		if errors.Is(err, ErrShutdown) {
			return
		}
		wait := backoff(attempt, d.cfg.JoinBackoffMin, d.cfg.JoinBackoffMax, rng)
		d.log.Warn("join failed, will retry", "attempt", attempt+1, "retry_in", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		case <-d.done:
			timer.Stop()
			return
		}
	}
}

// backoff returns the wait after the attempt-th failure (from 0): lo
// doubled attempt times, capped at hi, then jittered uniformly to [d/2, d]
// ("equal jitter": never less than half, so retries stay spaced).
func backoff(attempt int, lo, hi time.Duration, rng *rand.Rand) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + time.Duration(rng.Int64N(int64(d-half)+1))
}

func nameHash(id hasup.NodeID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// serfTags returns a fresh map of the user tags plus the reserved RPC tag.
func serfTags(user map[string]string, rpcAddr string) map[string]string {
	tags := maps.Clone(user)
	if tags == nil {
		tags = make(map[string]string, 1)
	}
	if rpcAddr != "" {
		tags[rpcTag] = rpcAddr
	}
	return tags
}

// toMember converts a Serf member, reporting false for a status Serf never
// exposes (StatusNone). A leaving member (it announced its leave and is
// shutting down) is reported MemberLeft already: it is going on purpose, and
// nothing should be placed on it in the second it takes to go.
func toMember(sm serf.Member) (hasup.Member, bool) {
	var state hasup.MemberState
	switch sm.Status {
	case serf.StatusAlive:
		state = hasup.MemberAlive
	case serf.StatusLeaving, serf.StatusLeft:
		state = hasup.MemberLeft
	case serf.StatusFailed:
		state = hasup.MemberFailed
	default:
		return hasup.Member{}, false
	}
	tags := make(map[string]string, len(sm.Tags))
	for k, v := range sm.Tags {
		if !strings.HasPrefix(k, ReservedTagPrefix) {
			tags[k] = v
		}
	}
	return hasup.Member{
		ID:    hasup.NodeID(sm.Name),
		Addr:  sm.Tags[rpcTag],
		State: state,
		Tags:  tags,
	}, true
}
