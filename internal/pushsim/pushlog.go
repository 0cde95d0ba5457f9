package pushsim

import (
	"encoding/json"
	"sync"
	"time"
)

// Push is one delivered push, as Server.Pushes returns it. Unlike
// Delivery, which keeps only the last push to each token, there is one Push
// per delivery.
type Push struct {
	// Seq numbers the deliveries since start or the last Reset: 1, 2, …
	// in the order they were recorded. Every delivery gets a number, kept
	// or not, so a first Seq above 1 means Options.KeepPushes dropped the
	// older ones.
	Seq      int    `json:"seq"`
	Provider string `json:"provider"` // ProviderAPNs or ProviderFCM
	// Token is the device token; for FCM topic or condition sends
	// "/topics/<name>" or "condition:<expr>", as in Delivery.
	Token string `json:"token"`
	// Topic is apns-topic (for FCM, apns.headers["apns-topic"]).
	Topic string `json:"topic,omitempty"`
	// PushType is apns-push-type (for FCM, apns.headers["apns-push-type"]).
	PushType string `json:"push_type,omitempty"`
	// Priority is apns-priority as sent, "" when left out (APNs then uses
	// 10). For FCM it is android.priority as sent, as in Delivery; FCM's
	// apns-priority is in Payload, under apns.headers.
	Priority string `json:"priority,omitempty"`
	// Expiration is apns-expiration as sent (for FCM, apns.headers["apns-expiration"]).
	Expiration string `json:"expiration,omitempty"`
	// CollapseID is apns-collapse-id (for FCM, apns.headers["apns-collapse-id"]).
	CollapseID string `json:"collapse_id,omitempty"`
	// Payload is the APNs request body, or the FCM "message" object,
	// decoded by encoding/json: objects are map[string]any, numbers
	// float64. An absent key is absent from the map.
	Payload map[string]any `json:"payload"`
	At      time.Time      `json:"at"` // when it was delivered, by Options.Now
}

// Value returns the member of Payload at the path of keys, such as
// ("aps", "content-available") or ("notification", "image"), and whether
// it is there. Keys are taken as they are: "google.x" is one key.
func (p Push) Value(keys ...string) (any, bool) {
	var v any = p.Payload
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// push is the Push that d records, before its Seq and decoded payload.
func (d *Delivery) push() Push {
	return Push{
		Provider:   d.Provider,
		Token:      d.Token,
		Topic:      d.Topic,
		PushType:   d.PushType,
		Priority:   d.Priority,
		Expiration: d.Expiration,
		CollapseID: d.CollapseID,
		At:         d.At,
	}
}

// pushLog keeps the last max pushes in a ring. The payloads stay raw until
// Server.Pushes asks, so a push costs a lock and a copy of its header
// fields, not a decoding.
type pushLog struct {
	mu   sync.Mutex
	max  int
	seq  int
	ring []pushRecord // up to max; ring[seq%max] is the next to overwrite once full
}

// pushRecord is a Push with the payload not yet decoded.
type pushRecord struct {
	Push
	raw []byte
}

func newPushLog(max int) *pushLog { return &pushLog{max: max} }

// record numbers p, keeps it with its raw payload (which the caller must
// not change afterwards) and drops the oldest push beyond max.
func (l *pushLog) record(p Push, raw []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	p.Seq = l.seq
	r := pushRecord{Push: p, raw: raw}
	if len(l.ring) < l.max {
		l.ring = append(l.ring, r)
		return
	}
	l.ring[(l.seq-1)%l.max] = r
}

func (l *pushLog) reset() {
	l.mu.Lock()
	l.seq = 0
	l.ring = nil
	l.mu.Unlock()
}

// all decodes the kept pushes, oldest first.
func (l *pushLog) all() []Push {
	l.mu.Lock()
	recs := make([]pushRecord, 0, len(l.ring))
	if len(l.ring) == l.max {
		oldest := l.seq % l.max
		recs = append(recs, l.ring[oldest:]...)
		recs = append(recs, l.ring[:oldest]...)
	} else {
		recs = append(recs, l.ring...)
	}
	l.mu.Unlock()

	out := make([]Push, len(recs))
	for i, r := range recs {
		out[i] = r.Push
		// The payload passed the simulator's checks as a JSON object.
		if err := json.Unmarshal(r.raw, &out[i].Payload); err != nil {
			panic("pushsim: a delivered payload does not decode: " + err.Error())
		}
	}
	return out
}

// Pushes returns the last Options.KeepPushes pushes delivered since start
// or the last Reset, oldest first, with their payloads decoded: every 200
// that delivered something, as Stats' Delivered counts, and no FCM
// validate_only or scripted answer. It returns an empty slice with
// KeepPushes 0.
func (s *Server) Pushes() []Push {
	if s.pushes == nil {
		return []Push{}
	}
	return s.pushes.all()
}
