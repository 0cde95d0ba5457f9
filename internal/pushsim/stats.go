package pushsim

import (
	"cmp"
	"encoding/json"
	"hash/maphash"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the counters since start or the last Reset.
type Stats struct {
	APNs        ProviderStats `json:"apns"`
	FCM         ProviderStats `json:"fcm"`
	OAuth       OAuthStats    `json:"oauth"`
	APNsJWT     JWTStats      `json:"apns_jwt"`
	Connections int           `json:"connections"` // TLS connections accepted (handshake done)
	GoAways     int           `json:"goaways"`     // connections ended by Faults.GoAwayAfter
}

// ProviderStats count the requests to one provider API.
type ProviderStats struct {
	Requests      int            `json:"requests"`
	Delivered     int            `json:"delivered"`      // answered 200, not validate_only
	ValidatedOnly int            `json:"validated_only"` // FCM validate_only answered 200
	Scripted      int            `json:"scripted"`       // answered from a Server.Script Answer
	ByStatus      map[string]int `json:"by_status"`      // HTTP status ("200", "410") → count
	ByReason      map[string]int `json:"by_reason"`      // APNs reason or FCM error code → count
	// FirstAt and LastAt are when the first and the last 200 answer was
	// given since start or the last Reset, by Options.Now; zero before the
	// first. An FCM validate_only 200 counts. Benchmarks take the time a
	// campaign took, as seen by the provider, from them.
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
}

// OAuthStats count token-endpoint requests.
type OAuthStats struct {
	TokenRequests int `json:"token_requests"`
	TokensIssued  int `json:"tokens_issued"`
	Rejected      int `json:"rejected"`
}

// JWTStats count the APNs provider tokens seen.
type JWTStats struct {
	DistinctTokens int `json:"distinct_tokens"` // distinct bearer strings
	Verified       int `json:"verified"`        // distinct bearer strings whose signature verified
}

// stats is the lock-free live form of Stats.
type stats struct {
	apns, fcm    providerStats
	tokenReqs    atomic.Int64
	tokensIssued atomic.Int64
	tokensRej    atomic.Int64
	jwtDistinct  atomic.Int64
	jwtVerified  atomic.Int64
	connections  atomic.Int64
	goaways      atomic.Int64
}

type providerStats struct {
	requests      atomic.Int64
	delivered     atomic.Int64
	validatedOnly atomic.Int64
	scripted      atomic.Int64
	byStatus      [600]atomic.Int64
	byReason      sync.Map // string → *atomic.Int64
	// firstOK and lastOK are the Unix nanoseconds of the first and the last
	// 200 answer; 0 means none yet.
	firstOK, lastOK atomic.Int64
}

// answer counts an answer with status and reason, given at now() if it is a
// 200 (now is called only then).
func (p *providerStats) answer(status int, reason string, now func() time.Time) {
	if status >= 0 && status < len(p.byStatus) {
		p.byStatus[status].Add(1)
	}
	if status == http.StatusOK {
		p.answeredOK(now().UnixNano())
	}
	if reason == "" {
		return
	}
	c, ok := p.byReason.Load(reason)
	if !ok {
		c, _ = p.byReason.LoadOrStore(reason, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// answeredOK moves firstOK and lastOK to cover t. Concurrent answers race
// only through compare-and-swap: firstOK keeps the earliest t it was offered
// and lastOK the latest, whatever order the calls land in.
func (p *providerStats) answeredOK(t int64) {
	for {
		cur := p.firstOK.Load()
		if cur != 0 && cur <= t || p.firstOK.CompareAndSwap(cur, t) {
			break
		}
	}
	for {
		cur := p.lastOK.Load()
		if cur >= t || p.lastOK.CompareAndSwap(cur, t) {
			break
		}
	}
}

// unixNanoTime is the time at n Unix nanoseconds in UTC (as it reads back
// from JSON), or the zero Time for 0.
func unixNanoTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (p *providerStats) snapshot() ProviderStats {
	out := ProviderStats{
		Requests:      int(p.requests.Load()),
		Delivered:     int(p.delivered.Load()),
		ValidatedOnly: int(p.validatedOnly.Load()),
		Scripted:      int(p.scripted.Load()),
		ByStatus:      map[string]int{},
		ByReason:      map[string]int{},
		FirstAt:       unixNanoTime(p.firstOK.Load()),
		LastAt:        unixNanoTime(p.lastOK.Load()),
	}
	for i := range p.byStatus {
		if n := p.byStatus[i].Load(); n != 0 {
			out.ByStatus[strconv.Itoa(i)] = int(n)
		}
	}
	p.byReason.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Load(); n != 0 {
			out.ByReason[k.(string)] = int(n)
		}
		return true
	})
	return out
}

func (p *providerStats) reset() {
	p.requests.Store(0)
	p.delivered.Store(0)
	p.validatedOnly.Store(0)
	p.scripted.Store(0)
	p.firstOK.Store(0)
	p.lastOK.Store(0)
	for i := range p.byStatus {
		p.byStatus[i].Store(0)
	}
	p.byReason.Range(func(_, v any) bool {
		v.(*atomic.Int64).Store(0)
		return true
	})
}

func (s *stats) reset() {
	s.apns.reset()
	s.fcm.reset()
	for _, c := range []*atomic.Int64{&s.tokenReqs, &s.tokensIssued, &s.tokensRej, &s.jwtDistinct, &s.jwtVerified, &s.connections, &s.goaways} {
		c.Store(0)
	}
}

// Stats returns a snapshot of the counters. Counters that move during the
// call may be caught mid-request.
func (s *Server) Stats() Stats {
	st := &s.stats
	return Stats{
		APNs: st.apns.snapshot(),
		FCM:  st.fcm.snapshot(),
		OAuth: OAuthStats{
			TokenRequests: int(st.tokenReqs.Load()),
			TokensIssued:  int(st.tokensIssued.Load()),
			Rejected:      int(st.tokensRej.Load()),
		},
		APNsJWT: JWTStats{
			DistinctTokens: int(st.jwtDistinct.Load()),
			Verified:       int(st.jwtVerified.Load()),
		},
		Connections: int(st.connections.Load()),
		GoAways:     int(st.goaways.Load()),
	}
}

// Provider names in Delivery.Provider.
const (
	ProviderAPNs = "apns"
	ProviderFCM  = "fcm"
)

// Delivery is what one device token received. Count says how often; the
// other fields come from the last delivery.
type Delivery struct {
	Token    string `json:"token"`    // device token; for FCM topic or condition sends "/topics/<name>" or "condition:<expr>"
	Provider string `json:"provider"` // ProviderAPNs or ProviderFCM
	Count    int    `json:"count"`    // deliveries to this token; more than 1 means duplicates
	// Topic is apns-topic (for FCM, apns.headers["apns-topic"]).
	Topic string `json:"topic,omitempty"`
	// PushType is apns-push-type (for FCM, apns.headers["apns-push-type"]).
	PushType string `json:"push_type,omitempty"`
	// Priority is apns-priority as sent (for FCM, android.priority).
	Priority string `json:"priority,omitempty"`
	// Expiration is apns-expiration as sent (for FCM, apns.headers["apns-expiration"]).
	Expiration string `json:"expiration,omitempty"`
	// CollapseID is apns-collapse-id (for FCM, apns.headers["apns-collapse-id"]).
	CollapseID string `json:"collapse_id,omitempty"`
	AndroidTag string `json:"android_tag,omitempty"` // FCM android.notification.tag
	AndroidTTL string `json:"android_ttl,omitempty"` // FCM android.ttl as sent
	// Payload is the APNs request body, or the FCM "message" object.
	Payload json.RawMessage `json:"payload"`
	At      time.Time       `json:"at"`
	// Received is when the last delivered request arrived, before any
	// injected latency or slowness.
	Received time.Time `json:"received"`
}

const deliveryShards = 64

// deliveryLog keeps one Delivery per (provider, token), sharded by token so
// concurrent requests rarely share a lock.
type deliveryLog struct {
	seed   maphash.Seed
	shards [deliveryShards]deliveryShard
}

type deliveryShard struct {
	mu sync.Mutex
	m  map[deliveryKey]*Delivery
}

type deliveryKey struct{ provider, token string }

func newDeliveryLog() *deliveryLog {
	l := &deliveryLog{seed: maphash.MakeSeed()}
	l.reset()
	return l
}

func (l *deliveryLog) reset() {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		sh.m = make(map[deliveryKey]*Delivery)
		sh.mu.Unlock()
	}
}

// record stores d as the latest delivery to its token and counts it.
func (l *deliveryLog) record(d Delivery) {
	sh := &l.shards[maphash.String(l.seed, d.Token)%deliveryShards]
	k := deliveryKey{d.Provider, d.Token}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.m[k]; old != nil {
		d.Count = old.Count + 1
		*old = d
		return
	}
	d.Count = 1
	sh.m[k] = &d
}

func (l *deliveryLog) all() []Delivery {
	var out []Delivery
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, d := range sh.m {
			out = append(out, *d)
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Delivery) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Token, b.Token))
	})
	if out == nil {
		out = []Delivery{}
	}
	return out
}

// Deliveries returns one record per token delivered at least once, sorted
// by provider and token; nil with NoDeliveryLog.
func (s *Server) Deliveries() []Delivery {
	if s.delivery == nil {
		return nil
	}
	return s.delivery.all()
}

// attempts counts requests per token for the behaviours that fail only the
// first few times.
type attempts struct {
	mu sync.Mutex
	m  map[deliveryKey]int
}

func (a *attempts) init() { a.m = make(map[deliveryKey]int) }

// next returns the 1-based number of this attempt for the token.
func (a *attempts) next(provider, token string) int {
	k := deliveryKey{provider, token}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[k]++
	return a.m[k]
}

func (a *attempts) reset() {
	a.mu.Lock()
	a.m = make(map[deliveryKey]int)
	a.mu.Unlock()
}
