package pushsim

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestBehaviourOf(t *testing.T) {
	t.Parallel()
	tests := map[string]Behaviour{
		"":           Deliver,
		"dea":        Deliver,
		"deadbeef":   Dead,
		"DEADBEEF":   Dead,
		"0bad00":     Invalid,
		"0f0e00":     WrongApp,
		"0429":       Throttled,
		"0503abcd":   Unavailable,
		"0510abcd":   Slow,
		"a0bad":      Deliver,
		"fcm:dead":   Deliver,
		"deadtoken:": Dead,
	}
	for tok, want := range tests {
		if got := BehaviourOf(tok); got != want {
			t.Errorf("BehaviourOf(%q) = %v, want %v", tok, got, want)
		}
	}
}

// TestPrefixBehaviours drives each token prefix through both providers.
func TestPrefixBehaviours(t *testing.T) {
	t.Parallel()
	const slow = 150 * time.Millisecond
	e := start(t, Options{SlowDelay: slow, Faults: Faults{RetryAfter: 7}})
	tok := e.accessToken()
	suffix := "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

	type answer struct {
		status int
		reason string // APNs reason or FCM errorCode
	}
	tests := []struct {
		prefix string
		apns   []answer // successive answers
		fcm    []answer
	}{
		{"dead", []answer{{410, "Unregistered"}, {410, "Unregistered"}}, []answer{{404, "UNREGISTERED"}, {404, "UNREGISTERED"}}},
		{"0bad", []answer{{400, "BadDeviceToken"}}, []answer{{400, "INVALID_ARGUMENT"}}},
		{"0f0e", []answer{{400, "DeviceTokenNotForTopic"}}, []answer{{403, "SENDER_ID_MISMATCH"}}},
		{"0429", []answer{{429, "TooManyRequests"}, {429, "TooManyRequests"}, {200, ""}, {200, ""}},
			[]answer{{429, "QUOTA_EXCEEDED"}, {429, "QUOTA_EXCEEDED"}, {200, ""}}},
		{"0503", []answer{{503, "ServiceUnavailable"}, {200, ""}}, []answer{{503, "UNAVAILABLE"}, {200, ""}}},
		{"0510", []answer{{200, ""}}, []answer{{200, ""}}},
		{"abcd", []answer{{200, ""}}, []answer{{200, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			e := e.with(t)
			device := tt.prefix + suffix
			for i, want := range tt.apns {
				begin := time.Now()
				r := e.pushAPNs(device)
				got := answer{r.status, ""}
				if r.status != 200 {
					got.reason = r.reason(t)
				}
				if got != want {
					t.Errorf("APNs attempt %d: %+v (%s), want %+v", i+1, got, r.body, want)
				}
				if tt.prefix == "0510" && time.Since(begin) < slow {
					t.Errorf("APNs slow token answered after %v, want at least %v", time.Since(begin), slow)
				}
				if r.header.Get("Retry-After") != "" {
					t.Errorf("APNs Retry-After %q: Apple sends none", r.header.Get("Retry-After"))
				}
			}
			fcmDevice := tt.prefix + ":APA91b-fcm-token"
			for i, want := range tt.fcm {
				begin := time.Now()
				r, a := e.sendFCM(tok, fcmToken(fcmDevice))
				got := answer{r.status, a.errorCode()}
				if got != want {
					t.Errorf("FCM attempt %d: %+v (%s), want %+v", i+1, got, r.body, want)
				}
				if tt.prefix == "0510" && time.Since(begin) < slow {
					t.Errorf("FCM slow token answered after %v, want at least %v", time.Since(begin), slow)
				}
				retry := r.status == 429 || r.status == 503
				if ra := r.header.Get("Retry-After"); retry && ra != "7" || !retry && ra != "" {
					t.Errorf("FCM %d Retry-After %q, want 7 on 429/503 only", r.status, ra)
				}
			}
		})
	}

	if ds := e.s.Deliveries(); len(ds) != 2*4 {
		t.Errorf("%d deliveries, want 8: 0429, 0503, 0510 and abcd on both providers", len(ds))
	}
	for _, d := range e.s.Deliveries() {
		if d.Token == "0429"+suffix && d.Count != 2 {
			t.Errorf("0429 APNs token delivered %d times, want 2", d.Count)
		}
	}
}

func TestThrottledTokenUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	const n = 40
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := e.client.Do(e.apnsRequest("0429"+devToken[4:], alertBody))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[http.StatusTooManyRequests] != 2 || counts[http.StatusOK] != n-2 {
		t.Errorf("statuses %v, want exactly 2×429 and %d×200", counts, n-2)
	}
}
