package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/parkd/parkd/events"
	"github.com/parkd/parkd/history"
)

// What Redis holds, every key under the prefix P (docs/cluster.md):
//
//	P:instances      set     the names of the instances that joined
//	P:inst:NAME      string  NAME is live; expires 3 s after its last heartbeat
//	P:parked:NAME    hash    connId → what NAME holds (record), while it is live
//	P:events         stream  the cluster's parked and finished events, trimmed to about 2 × -history
//	P:kill:NAME      channel kills for what NAME holds, from the other instances
//	P:reply:NAME     channel the owners' answers to NAME's kills
//
// A kill reaches the owner over pub/sub, not HTTP: an instance that shuts
// down gracefully closes its listener but must stay killable from
// anywhere through its grace, and its Redis connection stays open.
//
// An instance is live while its P:inst key exists. A connId is taken
// while a live instance's hash has it; the claim script checks every live
// instance and adds it to the claimer's hash in one atomic step. Nothing
// else is needed to restart: every instance re-registers what it holds
// when it finds its key gone (Redis restarted empty, or this instance was
// cut off for longer than 3 s).

// Timing of cluster mode.
const (
	// Expiry is how long an instance stays live after its last heartbeat.
	Expiry = 3 * time.Second
	// beat is the time between heartbeats; degradedBeat while Redis does
	// not answer, so that the instance is whole again soon after it does.
	// An instance that finds its registration gone waits a beat for the
	// others to find theirs gone too and re-register.
	beat         = 500 * time.Millisecond
	degradedBeat = 250 * time.Millisecond
	// parkWait bounds what a park waits on Redis.
	parkWait = time.Second
	// killWait bounds what a forwarded kill waits for the owner; the owner
	// drops a kill it gets later than killWait − killMargin after it was
	// sent.
	killWait   = time.Second
	killMargin = 100 * time.Millisecond
	// startWait is how long a starting instance retries to reach Redis.
	startWait = 5 * time.Second
	// queueSize bounds the writes (releases, events) waiting for Redis;
	// beyond it they are dropped, and the next reconciliation mends the
	// hash.
	queueSize = 1 << 16
)

// Config is what Connect needs.
type Config struct {
	URL      string // redis:// or rediss://, [user:password@]host:port[/db]
	Prefix   string
	Instance string
	History  int // finished requests the cluster keeps
	Log      *slog.Logger
	Ring     *history.Ring // this instance's own history, answered alone when degraded
	Hub      *events.Hub   // the event streams of this instance's clients
	// Local lists what this instance holds, for re-registering it.
	Local func() []Parked
	// KillLocal kills what this instance holds as connID, for another
	// instance (then: a then list's text, "" for the default); false when
	// it holds no such request.
	KillLocal func(connID, then string) bool
}

// Redis is the Store of cluster mode. Its methods are safe for concurrent
// use; the calls on a request's path wait at most parkWait (a claim) or
// killWait (a forwarded kill). It runs five goroutines of its own, ended
// by Close: the heartbeat (liveness, the cleanup of dead instances, and
// re-registering after a loss), the writer (claims, releases and events,
// batched), the reader (the cluster's events, into the hub), the
// subscriber (kills for this instance and answers to its own) and the
// killer (which carries out the kills other instances ask for).
type Redis struct {
	cfg    Config
	client rueidis.Client
	keys   keys

	killSeq  atomic.Uint64
	killMu   sync.Mutex
	awaiting map[string]chan string // a forwarded kill's id → its answer
	kills    chan rueidis.PubSubMessage

	health atomic.Uint32 // Whole or Degraded
	lostAt atomic.Int64  // when this instance found its registration gone (unix ns); 0 when not
	poke   chan struct{} // wakes the heartbeat at once
	queue  chan op
	stop   chan struct{}
	wg     sync.WaitGroup

	// readMu orders the hub's events with Subscribe's replay: the reader
	// holds it while it publishes, Subscribe while it reads the replay.
	readMu   sync.Mutex
	lastRead string // the id of the last event the reader published

	localMu  sync.Mutex // orders the local ids of the degraded view
	localSeq uint64

	// versionBase and versionSeq make this instance's version values
	// (bumpVersion).
	versionBase string
	versionSeq  atomic.Uint64

	othersMu   sync.Mutex          // guards what follows: Others's kept read
	othersUsed time.Time           // the last listing
	others     map[string]keptHash // by instance name
}

// op is one write for the writer: a claim, whose caller waits for its
// reply, or a release or an event, which nobody waits for. The writer
// sends them in the order they came, so that a release of a connId comes
// before a later claim of it.
type op struct {
	cmd   rueidis.Completed
	reply chan rueidis.RedisResult // nil: nobody waits
	hash  bool                     // it changes this instance's hash
}

type keys struct{ instances, events, prefix string }

func (k keys) inst(name string) string   { return k.prefix + ":inst:" + name }
func (k keys) parked(name string) string { return k.prefix + ":parked:" + name }

// version names the key that changes whenever name's hash does (see
// Others).
func (k keys) version(name string) string { return k.prefix + ":ver:" + name }

// Connect joins the cluster: it reaches Redis (retrying for 5 s), takes
// the instance's name (waiting up to Expiry for a live instance of that
// name to expire), and starts the Store's goroutines. It fails, with a
// sentence for the operator, when either cannot be done.
func Connect(ctx context.Context, cfg Config) (*Redis, error) {
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: the Redis URL: %w", err)
	}
	opt.DisableCache = true
	opt.ConnWriteTimeout = time.Second // a dead connection is found within a beat or so
	var client rueidis.Client
	for start := time.Now(); ; {
		if client, err = rueidis.NewClient(opt); err == nil {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err = client.Do(pctx, client.B().Ping().Build()).Error()
			cancel()
			if err == nil {
				break
			}
			client.Close()
		}
		if time.Since(start) > startWait || ctx.Err() != nil {
			return nil, fmt.Errorf("cluster: cannot reach Redis at %s for %v: %w", redactURL(cfg.URL), startWait, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := &Redis{
		cfg:      cfg,
		client:   client,
		keys:     keys{instances: cfg.Prefix + ":instances", events: cfg.Prefix + ":events", prefix: cfg.Prefix},
		queue:    make(chan op, queueSize),
		poke:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		awaiting: map[string]chan string{},
		kills:    make(chan rueidis.PubSubMessage, 1024),
		// Unique to this process: see bumpVersion.
		versionBase: strconv.FormatUint(rand.Uint64(), 36) + ":",
	}
	subscribed := make(chan error, 1)
	r.wg.Add(2)
	go r.subscriber(subscribed)
	go r.killer()
	var err2 error
	select {
	case err2 = <-subscribed:
	case <-time.After(startWait):
		err2 = errors.New("no confirmation from Redis")
	}
	if err2 != nil {
		close(r.stop)
		r.wg.Wait()
		client.Close()
		return nil, fmt.Errorf("cluster: subscribing to kills: %w", err2)
	}
	if err := r.join(ctx); err != nil {
		close(r.stop)
		r.wg.Wait()
		client.Close()
		return nil, err
	}
	r.health.Store(uint32(Whole))
	r.wg.Add(3)
	go r.heartbeat()
	go r.writer()
	go r.reader()
	return r, nil
}

func (k keys) kill(name string) string  { return k.prefix + ":kill:" + name }
func (k keys) reply(name string) string { return k.prefix + ":reply:" + name }

// subscriber receives the kills other instances ask of this one and the
// answers to this one's, until Close; rueidis resubscribes by itself after
// a lost connection. A kill goes to the killer goroutine: the callback
// must not wait.
func (r *Redis) subscriber(subscribed chan<- error) {
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-r.stop; cancel() }()
	me := r.cfg.Instance
	var once sync.Once
	confirm := func(err error) { once.Do(func() { subscribed <- err }) }
	// Confirmed once both channels are subscribed (and again, harmlessly,
	// after each resubscription).
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "subscribe" && s.Count == 2 {
			confirm(nil)
		}
	})
	for ctx.Err() == nil {
		err := r.client.Receive(hooked, r.client.B().Subscribe().Channel(r.keys.kill(me), r.keys.reply(me)).Build(),
			func(m rueidis.PubSubMessage) {
				switch m.Channel {
				case r.keys.kill(me):
					select {
					case r.kills <- m:
					default: // overwhelmed: the killer's caller hears nothing and says unreachable
					}
				case r.keys.reply(me):
					id, answer, _ := strings.Cut(m.Message, "|")
					r.killMu.Lock()
					ch := r.awaiting[id]
					r.killMu.Unlock()
					if ch != nil {
						select {
						case ch <- answer:
						default:
						}
					}
				}
			})
		if err != nil && ctx.Err() == nil {
			confirm(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(degradedBeat):
		}
	}
}

// killer carries out, one by one, the kills other instances ask for, and
// answers each: "ok" once decided here, "none" when this instance holds no
// such request.
func (r *Redis) killer() {
	defer r.wg.Done()
	for {
		var m rueidis.PubSubMessage
		select {
		case <-r.stop:
			return
		case m = <-r.kills:
		}
		// id|from|expires|then|connId: the connId last, as it may hold a '|'.
		f := strings.SplitN(m.Message, "|", 5)
		if len(f) != 5 {
			continue
		}
		if expires, err := strconv.ParseInt(f[2], 10, 64); err != nil || time.Now().UnixMilli() > expires {
			continue // its killer has given up, and answered 503
		}
		answer := "none"
		if r.cfg.KillLocal(f[4], f[3]) {
			answer = "ok"
		}
		ctx, cancel := context.WithTimeout(context.Background(), killWait)
		r.client.Do(ctx, r.client.B().Publish().Channel(r.keys.reply(f[1])).Message(f[0]+"|"+answer).Build())
		cancel()
	}
}

// join takes the instance's name: a live instance of that name has its
// key; it gets Expiry to let it lapse. What a former instance of the name
// left in its hash is dead and goes.
func (r *Redis) join(ctx context.Context) error {
	me := r.cfg.Instance
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		set := r.client.Do(cctx, r.client.B().Set().Key(r.keys.inst(me)).Value("live").Nx().PxMilliseconds(Expiry.Milliseconds()).Build())
		cancel()
		err := set.Error()
		if err == nil {
			break
		}
		if !rueidis.IsRedisNil(err) {
			return fmt.Errorf("cluster: joining: %w", err)
		}
		if time.Since(start) > Expiry+beat/2 || ctx.Err() != nil {
			return fmt.Errorf("cluster: the instance name %q is taken by a live instance (its heartbeat did not lapse within %v); give each instance its own -instance", me, Expiry)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for _, res := range r.client.DoMulti(cctx,
		r.client.B().Del().Key(r.keys.parked(me)).Build(),
		r.bumpVersion(),
		r.client.B().Sadd().Key(r.keys.instances).Member(me).Build()) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("cluster: joining: %w", err)
		}
	}
	return nil
}

// Health is Whole or Degraded.
func (r *Redis) Health() Health { return Health(r.health.Load()) }

func (r *Redis) degrade(why error) {
	if errors.Is(why, errLost) {
		r.lostAt.CompareAndSwap(0, time.Now().UnixNano())
	}
	select {
	case r.poke <- struct{}{}: // the heartbeat mends it now
	default:
	}
	if r.health.Swap(uint32(Degraded)) == uint32(Whole) {
		r.cfg.Log.Warn("cluster store unreachable: answering from this instance alone", "err", why)
		r.cfg.Hub.DropAll() // streams reconnect to the view they can have now
	}
}

// Claim runs the claim script, through the writer so that the claims of
// parks arriving together share round trips: taken if a live instance
// holds the connId, else it is this instance's. A holder whose request has
// just ended is given up to releaseWait to let it go.
func (r *Redis) Claim(ctx context.Context, p Parked) error {
	ctx, cancel := context.WithTimeout(ctx, parkWait)
	defer cancel()
	rec := encodeParked(&p)
	for retry := time.Now().Add(releaseWait); ; {
		if r.Health() != Whole {
			return ErrUnavailable
		}
		giveUp, _ := ctx.Deadline()
		cmd := r.client.B().Eval().Script(claimScript).Numkeys(0).
			Arg(r.cfg.Prefix, r.cfg.Instance, p.ConnID, rec, strconv.FormatInt(time.Now().UnixMilli(), 10),
				strconv.FormatInt(giveUp.UnixMilli(), 10)).Build()
		reply := make(chan rueidis.RedisResult, 1)
		select {
		case r.queue <- op{cmd: cmd, reply: reply, hash: true}:
		case <-ctx.Done():
			r.degrade(ctx.Err())
			return ErrUnavailable
		}
		var res rueidis.RedisResult
		select {
		case res = <-reply:
		case <-ctx.Done():
			r.degrade(ctx.Err())
			return ErrUnavailable
		}
		holder, err := res.ToArray()
		switch {
		case err != nil:
			r.degrade(err)
			return ErrUnavailable
		case len(holder) == 0:
			return nil
		}
		name, _ := holder[0].ToString()
		switch {
		case name == "lost": // this instance's view is gone
			r.degrade(errLost)
			return ErrUnavailable
		case name == "late":
			r.degrade(errors.New("a claim reached Redis after its park had given up"))
			return ErrUnavailable
		}
		ending, _ := holder[1].AsBool()
		if !ending || time.Now().After(retry) {
			return fmt.Errorf("%w: %s", ErrTaken, name)
		}
		time.Sleep(time.Millisecond) // its release is on its way
	}
}

// releaseWait is how long a claim waits for a holder whose request has
// just ended to release it.
const releaseWait = 25 * time.Millisecond

// Release queues the removal of p from this instance's hash, and waits up
// to wait for it to be done. It comes before any later claim of the
// connId, which goes through the same queue.
func (r *Redis) Release(p Parked, wait time.Duration) {
	cmd := r.client.B().Hdel().Key(r.keys.parked(r.cfg.Instance)).Field(p.ConnID).Build()
	if wait <= 0 || r.Health() != Whole {
		r.enqueue(cmd, true)
		return
	}
	done := make(chan rueidis.RedisResult, 1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r.queue <- op{cmd: cmd, reply: done, hash: true}:
	case <-timer.C:
		return
	}
	select {
	case <-done:
	case <-timer.C:
	}
}

// enqueue queues c for the writer, which nobody waits for; hash: c
// changes this instance's hash.
func (r *Redis) enqueue(c rueidis.Completed, hash bool) {
	if r.Health() != Whole {
		return // reconciliation mends the hash
	}
	select {
	case r.queue <- op{cmd: c, hash: hash}:
	default:
	}
}

// writer sends queued writes in batches: concurrent answers share round
// trips, and none of them waits for Redis.
func (r *Redis) writer() {
	defer r.wg.Done()
	batch := make([]op, 0, 256)
	cmds := make(rueidis.Commands, 0, 256)
	for {
		select {
		case <-r.stop:
			return
		case o := <-r.queue:
			batch = append(batch[:0], o)
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case o := <-r.queue:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		cmds = cmds[:0]
		changes := false
		for _, o := range batch {
			cmds = append(cmds, o.cmd)
			changes = changes || o.hash
		}
		if changes { // after the changes, on the same connection
			cmds = append(cmds, r.bumpVersion())
		}
		ctx, cancel := context.WithTimeout(context.Background(), parkWait)
		results := r.client.DoMulti(ctx, cmds...)
		cancel()
		failed := false
		for i, res := range results {
			if i == len(batch) { // the version
				if err := res.Error(); err != nil && !failed {
					failed = true
					r.degrade(err)
				}
				break
			}
			if o := batch[i]; o.reply != nil {
				o.reply <- res
			} else if err := res.Error(); err != nil && !rueidis.IsRedisNil(err) && !failed {
				failed = true
				r.degrade(err)
			}
		}
		clear(batch)
	}
}

// heartbeat keeps the instance live, drops dead instances, and notices a
// loss: its key gone (Redis restarted empty, or the key lapsed while Redis
// was cut off), after which it re-registers what the instance holds
// before it says Whole again.
func (r *Redis) heartbeat() {
	defer r.wg.Done()
	me := r.cfg.Instance
	for {
		wait := beat
		if r.Health() != Whole {
			wait = degradedBeat
		}
		select {
		case <-r.stop:
			return
		case <-r.poke:
		case <-time.After(wait):
		}
		r.forgetOthers()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		res := r.client.DoMulti(ctx,
			r.client.B().Set().Key(r.keys.inst(me)).Value("live").Get().PxMilliseconds(Expiry.Milliseconds()).Build(),
			r.client.B().Sadd().Key(r.keys.instances).Member(me).Build(),
			r.client.B().Eval().Script(cleanScript).Numkeys(0).Arg(r.cfg.Prefix).Build())
		cancel()
		_, err := res[0].ToString()
		lost := rueidis.IsRedisNil(err)
		if err != nil && !lost {
			r.degrade(err)
			continue
		}
		if err := errors.Join(res[1].Error(), res[2].Error()); err != nil {
			r.degrade(err)
			continue
		}
		if lost || r.Health() != Whole {
			if lost {
				r.degrade(errLost)
			}
			claimed, err := r.reconcile(lost)
			if err != nil {
				r.degrade(err)
				continue
			}
			if at := r.lostAt.Swap(0); at != 0 {
				// The other instances find their registrations gone at their
				// next beat at the latest, and re-register: until then this
				// one's view would miss their requests.
				select {
				case <-r.stop:
					return
				case <-time.After(time.Until(time.Unix(0, at).Add(beat + degradedBeat/2))):
				}
			}
			if r.health.Swap(uint32(Whole)) != uint32(Whole) {
				r.cfg.Log.Info("cluster store reachable again: whole")
				r.cfg.Hub.DropAll()
			}
			// What ended while reconcile ran had its release dropped (not
			// whole yet): it goes now, unless a later park of its connId
			// has claimed it again.
			r.sweep(claimed)
		}
	}
}

// reconcile makes this instance's hash hold exactly what it holds: it
// drops what has ended meanwhile and claims, one by one, what is missing.
// A connId another instance took while this one was cut off stays with
// it; this instance's request of the same id runs on, listed by this
// instance alone.
func (r *Redis) reconcile(lost bool) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	me := r.cfg.Instance
	held, err := r.client.Do(ctx, r.client.B().Hgetall().Key(r.keys.parked(me)).Build()).AsStrMap()
	if err != nil {
		return nil, err
	}
	local := r.cfg.Local()
	want := make(map[string]string, len(local))
	for i := range local {
		want[local[i].ConnID] = encodeParked(&local[i])
	}
	var cmds rueidis.Commands
	for id, v := range held {
		if want[id] != v {
			cmds = append(cmds, r.client.B().Hdel().Key(r.keys.parked(me)).Field(id).Build())
		}
	}
	if lost {
		// The hash lapsed with this instance: others may have claimed its
		// connIds meanwhile. Everything is claimed anew, against them.
		cmds = append(cmds[:0], r.client.B().Del().Key(r.keys.parked(me)).Build())
		held = nil
	}
	var ids []string
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	giveUp := strconv.FormatInt(time.Now().Add(10*time.Second).UnixMilli(), 10)
	for id, v := range want {
		if held[id] != v {
			ids = append(ids, id)
			cmds = append(cmds, r.client.B().Eval().Script(claimScript).Numkeys(0).Arg(r.cfg.Prefix, me, id, v, now, giveUp).Build())
		}
	}
	if len(cmds) == 0 {
		return want, nil
	}
	res := r.client.DoMulti(ctx, append(cmds, r.bumpVersion())...)
	if err := res[len(res)-1].Error(); err != nil {
		return nil, err
	}
	res = res[:len(res)-1]
	for _, c := range res[:len(res)-len(ids)] {
		if err := c.Error(); err != nil {
			return nil, err
		}
	}
	for i, c := range res[len(res)-len(ids):] {
		holder, err := c.ToArray()
		if err != nil {
			return nil, err
		}
		if len(holder) > 1 {
			name, _ := holder[0].ToString()
			r.cfg.Log.Warn("a connId this instance holds was parked on another instance while this one was cut off: it stays there, and this one is listed here only",
				"connId", ids[i], "instance", name)
		}
	}
	if lost {
		r.cfg.Log.Info("re-registered the requests this instance holds", "count", len(ids))
	}
	return want, nil
}

// sweep removes from this instance's hash what reconcile registered and
// has ended since, each only while its record is still the one reconcile
// wrote.
func (r *Redis) sweep(registered map[string]string) {
	if len(registered) == 0 {
		return
	}
	still := map[string]bool{}
	for _, p := range r.cfg.Local() {
		still[p.ConnID] = true
	}
	var cmds rueidis.Commands
	for id, v := range registered {
		if !still[id] {
			cmds = append(cmds, r.client.B().Eval().Script(releaseIfScript).Numkeys(1).Key(r.keys.parked(r.cfg.Instance)).Arg(id, v).Build())
		}
	}
	if len(cmds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, res := range r.client.DoMulti(ctx, append(cmds, r.bumpVersion())...) {
		if err := res.Error(); err != nil {
			r.degrade(err) // the next reconcile mends it
			return
		}
	}
}

// Others reads the hashes of the other live instances, one slice per
// instance. An instance's hash is read again only when its version key
// has moved since this instance last read it: a listing of a cluster
// whose other instances changed nothing reads their versions alone. The
// slices returned are shared with other calls and must only be read.
func (r *Redis) Others(ctx context.Context) ([][]Parked, error) {
	if r.Health() != Whole {
		return nil, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, parkWait)
	defer cancel()
	names, versions, err := r.liveOthers(ctx)
	if err != nil {
		return nil, err
	}
	r.othersMu.Lock()
	defer r.othersMu.Unlock()
	r.othersUsed = time.Now()
	// Only the hashes that moved are read; their versions were read
	// first, so what is kept is at least as new as its version says. A
	// hash that moved since the last listing is read but not kept (it is
	// likely to move again, and keeping it would only hold memory); one
	// read for the first time, or found unmoved, is kept. What moved is
	// let go of before its new read is decoded.
	out := make([][]Parked, len(names))
	fresh := make(map[string]keptHash, len(names))
	var stale []int
	var keep []bool
	var cmds rueidis.Commands
	for i, name := range names {
		k, seen := r.others[name]
		if seen && k.parked != nil && k.version == versions[i] && versions[i] != "" {
			fresh[name], out[i] = k, k.parked
			continue
		}
		stale = append(stale, i)
		keep = append(keep, versions[i] != "" && (!seen || k.version == versions[i]))
		cmds = append(cmds, r.client.B().Hgetall().Key(r.keys.parked(name)).Build())
	}
	r.others = nil
	for n, res := range r.client.DoMulti(ctx, cmds...) {
		m, err := res.AsStrMap()
		if err != nil {
			r.degrade(err)
			return nil, ErrUnavailable
		}
		i := stale[n]
		parked := make([]Parked, 0, len(m))
		for id, v := range m {
			if p, ok := decodeParked(id, names[i], v); ok {
				parked = append(parked, p)
			}
		}
		out[i] = parked
		k := keptHash{version: versions[i]}
		if keep[n] {
			k.parked = parked
		}
		fresh[names[i]] = k
	}
	r.others = fresh
	return out, nil
}

// keptHash is what Others last read of one other instance: the version
// it was read at, and what it read if that is kept (nil if not); kept
// while listings come (keptFor).
type keptHash struct {
	version string
	parked  []Parked
}

// keptFor is how long what Others read is kept after the last listing:
// a dashboard or a test polling serverStatus reads only what moved, and a
// cluster nobody lists holds no copy of the others.
const keptFor = 10 * time.Second

// forgetOthers drops the kept read once nobody has listed for keptFor;
// the heartbeat calls it, and does not wait for a listing that is reading
// (that one is using what is kept).
func (r *Redis) forgetOthers() {
	if !r.othersMu.TryLock() {
		return
	}
	if time.Since(r.othersUsed) > keptFor {
		r.others = nil
	}
	r.othersMu.Unlock()
}

// bumpVersion moves this instance's version key: it comes after every
// change of its hash, on the same connection, so that another instance
// that reads the version and then the hash keeps a hash at least that new.
// The value is unique to this process and change, so that a Redis
// restarted empty, or an instance of the same name started again, never
// shows a version another instance has kept.
func (r *Redis) bumpVersion() rueidis.Completed {
	v := r.versionBase + strconv.FormatUint(r.versionSeq.Add(1), 10)
	return r.client.B().Set().Key(r.keys.version(r.cfg.Instance)).Value(v).Build()
}

// liveOthers names the live instances but this one, with their versions
// ("" for none), after checking that this one is still live in the view.
func (r *Redis) liveOthers(ctx context.Context) (names, versions []string, err error) {
	names, err = r.client.Do(ctx, r.client.B().Smembers().Key(r.keys.instances).Build()).AsStrSlice()
	if err != nil {
		r.degrade(err)
		return nil, nil, ErrUnavailable
	}
	names = append(slices.DeleteFunc(names, func(n string) bool { return n == r.cfg.Instance }), r.cfg.Instance)
	cmds := make(rueidis.Commands, 0, 2*len(names))
	for _, name := range names {
		cmds = append(cmds, r.client.B().Exists().Key(r.keys.inst(name)).Build())
	}
	for _, name := range names[:len(names)-1] {
		cmds = append(cmds, r.client.B().Get().Key(r.keys.version(name)).Build())
	}
	res := r.client.DoMulti(ctx, cmds...)
	live := names[:0]
	for i := range names {
		n, err := res[i].AsInt64()
		if err != nil {
			r.degrade(err)
			return nil, nil, ErrUnavailable
		}
		switch {
		case i == len(names)-1 && n == 0: // this one: lost
			r.degrade(errLost)
			return nil, nil, ErrUnavailable
		case i < len(names)-1 && n == 1:
			v, err := res[len(names)+i].ToString()
			if err != nil && !rueidis.IsRedisNil(err) {
				r.degrade(err)
				return nil, nil, ErrUnavailable
			}
			live = append(live, names[i])
			versions = append(versions, v)
		}
	}
	return live, versions, nil
}

// errLost: this instance's key is gone from Redis (restarted empty, or it
// lapsed while this one was cut off).
var errLost = errors.New("this instance's registration is gone from Redis")

// Find asks which live instance but this one holds connID.
func (r *Redis) Find(ctx context.Context, connID string) (Parked, error) {
	if r.Health() != Whole {
		return Parked{}, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, parkWait)
	defer cancel()
	found, err := r.client.Do(ctx, r.client.B().Eval().Script(findScript).Numkeys(0).Arg(r.cfg.Prefix, r.cfg.Instance, connID).Build()).AsStrSlice()
	switch {
	case err != nil:
		r.degrade(err)
		return Parked{}, ErrUnavailable
	case len(found) == 1: // lost: this instance's view is gone
		r.degrade(errLost)
		return Parked{}, ErrUnavailable
	case len(found) != 2:
		return Parked{}, ErrNotParked
	}
	p, ok := decodeParked(connID, found[0], found[1])
	if !ok {
		return Parked{}, ErrNotParked
	}
	return p, nil
}

// Kill asks the owner to kill, over pub/sub, and returns once the owner
// has answered: the owner decides, and writes the killed request's answer,
// before it answers.
func (r *Redis) Kill(ctx context.Context, connID, then string) error {
	p, err := r.Find(ctx, connID)
	if err != nil {
		return err
	}
	id := strconv.FormatUint(r.killSeq.Add(1), 10)
	answer := make(chan string, 1)
	r.killMu.Lock()
	r.awaiting[id] = answer
	r.killMu.Unlock()
	defer func() {
		r.killMu.Lock()
		delete(r.awaiting, id)
		r.killMu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	// The owner carries the kill out only before its deadline, a little
	// inside this wait: a kill answered 503 never happens later.
	expires := strconv.FormatInt(time.Now().Add(killWait-killMargin).UnixMilli(), 10)
	heard, err := r.client.Do(ctx, r.client.B().Publish().Channel(r.keys.kill(p.Instance)).
		Message(id+"|"+r.cfg.Instance+"|"+expires+"|"+then+"|"+connID).Build()).AsInt64()
	if err != nil || heard == 0 {
		return Unreachable{p.Instance}
	}
	select {
	case a := <-answer:
		if a == "ok" {
			return nil
		}
		return ErrNotParked // it ended meanwhile
	case <-ctx.Done():
		return Unreachable{p.Instance}
	}
}

// Publishing is always true: another instance may have a stream.
func (r *Redis) Publishing() bool { return true }

// PublishParked queues the event for the stream; degraded, it goes to
// this instance's streams alone.
func (r *Redis) PublishParked(connID string, data []byte) {
	if r.Health() != Whole {
		r.publishLocal("parked", data)
		return
	}
	r.enqueue(r.xadd("p", connID, "", data), false)
}

// PublishFinished keeps rec in this instance's ring (its degraded view)
// and queues its event for the cluster's stream; degraded, the event goes
// to this instance's streams alone.
func (r *Redis) PublishFinished(rec history.Record) {
	data := rec.AppendJSON(nil)
	r.localMu.Lock()
	r.localSeq++
	rec.ID = history.ID{Major: uint64(time.Now().UnixMilli()), Minor: r.localSeq, HasMinor: true}
	r.cfg.Ring.Add(rec)
	r.localMu.Unlock()
	if r.Health() != Whole {
		r.publishLocal("finished", data)
		return
	}
	r.enqueue(r.xadd("f", rec.ConnID, rec.Outcome, data), false)
}

func (r *Redis) publishLocal(event string, data []byte) {
	r.localMu.Lock()
	defer r.localMu.Unlock()
	r.localSeq++
	id := history.ID{Major: uint64(time.Now().UnixMilli()), Minor: r.localSeq, HasMinor: true}
	r.cfg.Hub.Publish(events.AppendFrame(nil, id.AppendText(nil), event, data))
}

// xadd is one event of the stream: its kind (p or f), connId, outcome and
// data, trimmed to about twice the history.
func (r *Redis) xadd(kind, connID, outcome string, data []byte) rueidis.Completed {
	return r.client.B().Xadd().Key(r.keys.events).Maxlen().Almost().Threshold(strconv.Itoa(r.streamLen())).Id("*").
		FieldValue().FieldValue("k", kind).FieldValue("c", connID).FieldValue("o", outcome).
		FieldValue("d", string(data)).Build()
}

func (r *Redis) streamLen() int { return max(2*r.cfg.History, 1000) }

// reader publishes the cluster's events into the hub, in the stream's
// order, with the stream's ids.
func (r *Redis) reader() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		if r.Health() != Whole || r.lastRead == "" {
			r.setTail() // streams restart when whole again, from now on
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		res, err := r.client.Do(ctx, r.client.B().Xread().Count(1000).Block(1000).Streams().Key(r.keys.events).Id(r.lastRead).Build()).AsXRead()
		cancel()
		if err != nil {
			if !rueidis.IsRedisNil(err) && ctx.Err() == nil {
				r.degrade(err)
			}
			continue
		}
		r.readMu.Lock()
		for _, e := range res[r.keys.events] {
			r.cfg.Hub.Publish(frameOf(e))
			r.lastRead = e.ID
		}
		r.readMu.Unlock()
	}
}

// setTail starts the reader at the stream's last event: what came before
// is history, for replay; what follows is live.
func (r *Redis) setTail() {
	tail := ""
	if r.Health() == Whole {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		entries, err := r.client.Do(ctx, r.client.B().Xrevrange().Key(r.keys.events).End("+").Start("-").Count(1).Build()).AsXRange()
		cancel()
		switch {
		case err != nil:
			r.degrade(err)
		case len(entries) == 0:
			tail = "0-0"
		default:
			tail = entries[0].ID
		}
	}
	r.readMu.Lock()
	r.lastRead = tail
	r.readMu.Unlock()
	if tail == "" {
		select {
		case <-r.stop:
		case <-time.After(degradedBeat):
		}
	}
}

// recordOf reads a finished event of the stream as a history record.
func recordOf(e rueidis.XRangeEntry) (history.Record, bool) {
	if e.FieldValues["k"] != "f" {
		return history.Record{}, false
	}
	rec, err := history.ParseJSON([]byte(e.FieldValues["d"]))
	if err != nil {
		return history.Record{}, false
	}
	id, ok := history.ParseID(e.ID)
	rec.ID = id
	return rec, ok
}

// frameOf writes a stream entry as an SSE frame.
func frameOf(e rueidis.XRangeEntry) []byte {
	event := "parked"
	if e.FieldValues["k"] == "f" {
		event = "finished"
	}
	d := e.FieldValues["d"]
	return events.AppendFrame(make([]byte, 0, len(d)+64), []byte(e.ID), event, []byte(d))
}

// Subscribe adds a stream, with the finished events after last that the
// cluster's stream still holds, up to the last one the reader published:
// every later one the reader will publish.
func (r *Redis) Subscribe(last history.ID, replay bool, cut func()) (*events.Subscriber, []history.Record, error) {
	if r.Health() != Whole {
		sub, err := r.cfg.Hub.Subscribe(cut)
		if err != nil || !replay {
			return sub, nil, err
		}
		return sub, r.cfg.Ring.After(nil, last), nil
	}
	r.readMu.Lock()
	defer r.readMu.Unlock()
	sub, err := r.cfg.Hub.Subscribe(cut)
	if err != nil || !replay || r.lastRead == "" || r.cfg.History == 0 {
		return sub, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), parkWait)
	defer cancel()
	entries, err := r.client.Do(ctx, r.client.B().Xrange().Key(r.keys.events).Start("("+streamID(last)).End(r.lastRead).Build()).AsXRange()
	if err != nil {
		return sub, nil, nil // a stream without its replay is still a stream
	}
	var recs []history.Record
	for _, e := range entries {
		if rec, ok := recordOf(e); ok {
			recs = append(recs, rec)
		}
	}
	// The stream holds more than the history: replay what the history
	// would still list, the newest History finished events.
	if len(recs) > r.cfg.History {
		recs = recs[len(recs)-r.cfg.History:]
	}
	return sub, recs, nil
}

// History reads the cluster's stream, newest first: the finished events
// that f selects, among the newest History of them.
func (r *Redis) History(ctx context.Context, f history.Filter) ([]history.Record, error) {
	if r.Health() != Whole {
		return r.cfg.Ring.Select(nil, f), nil
	}
	ctx, cancel := context.WithTimeout(ctx, parkWait)
	defer cancel()
	var out []history.Record
	seen, end := 0, "+"
	for seen < r.cfg.History {
		entries, err := r.client.Do(ctx, r.client.B().Xrevrange().Key(r.keys.events).End(end).Start("-").Count(1000).Build()).AsXRange()
		if err != nil {
			r.degrade(err)
			return r.cfg.Ring.Select(nil, f), nil
		}
		for _, e := range entries {
			if e.FieldValues["k"] != "f" {
				continue
			}
			if seen++; seen > r.cfg.History {
				break
			}
			if f.ConnID != "" && e.FieldValues["c"] != f.ConnID || f.Outcome != "" && e.FieldValues["o"] != f.Outcome {
				continue
			}
			if rec, ok := recordOf(e); ok {
				out = append(out, rec)
				if f.Limit > 0 && len(out) >= f.Limit {
					return out, nil
				}
			}
		}
		if len(entries) < 1000 {
			break
		}
		end = "(" + entries[len(entries)-1].ID
	}
	return out, nil
}

// Close leaves the cluster: the goroutines stop, and the instance's key
// and hash go, so that it leaves the view at once.
func (r *Redis) Close() {
	close(r.stop)
	r.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r.client.DoMulti(ctx,
		r.client.B().Del().Key(r.keys.inst(r.cfg.Instance), r.keys.parked(r.cfg.Instance), r.keys.version(r.cfg.Instance)).Build(),
		r.client.B().Srem().Key(r.keys.instances).Member(r.cfg.Instance).Build())
	r.client.Close()
}

// streamID writes an event id as a stream id ("17" as "17-0").
func streamID(id history.ID) string {
	return strconv.FormatUint(id.Major, 10) + "-" + strconv.FormatUint(id.Minor, 10)
}

// redactURL drops a password from a Redis URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unreadable URL)"
	}
	return u.Redacted()
}

// encodeParked writes what a hash holds for a parked request:
// token|startedMs|timeoutMs|dripMs|pieces|bodyLen|then|remote.
func encodeParked(p *Parked) string {
	var b strings.Builder
	b.Grow(64)
	for _, n := range []int64{int64(p.Token), p.Started.UnixMilli(), p.Timeout.Milliseconds(), p.Drip.Milliseconds(),
		int64(p.Pieces), int64(p.BodyLen)} {
		b.WriteString(strconv.FormatInt(n, 10))
		b.WriteByte('|')
	}
	b.WriteString(p.Then)
	b.WriteByte('|')
	b.WriteString(p.RemoteAddr)
	return b.String()
}

func decodeParked(connID, instance, v string) (Parked, bool) {
	// Six numbers, then, and the address (which may hold '|' itself): cut
	// field by field rather than split, since a listing decodes one per
	// request of every other instance.
	var n [6]int64
	rest := v
	for i := range n {
		j := strings.IndexByte(rest, '|')
		if j < 0 {
			return Parked{}, false
		}
		var err error
		if n[i], err = strconv.ParseInt(rest[:j], 10, 64); err != nil {
			return Parked{}, false
		}
		rest = rest[j+1:]
	}
	then, remote, ok := strings.Cut(rest, "|")
	if !ok {
		return Parked{}, false
	}
	return Parked{
		ConnID: connID, Instance: instance, Token: uint64(n[0]), Started: time.UnixMilli(n[1]),
		Timeout: time.Duration(n[2]) * time.Millisecond, Drip: time.Duration(n[3]) * time.Millisecond,
		Pieces: int(n[4]), BodyLen: int(n[5]), Then: then, RemoteAddr: remote,
	}, true
}
