package pushsim

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// Behaviour is what a device token makes the simulator do, chosen by the
// token's first four characters (case-insensitive). APNs and FCM share them.
type Behaviour int

// The behaviours, with their prefixes.
const (
	Deliver     Behaviour = iota // any other prefix: 200 (subject to Faults)
	Dead                         // "dead": APNs 410 Unregistered, FCM 404 UNREGISTERED
	Invalid                      // "0bad": APNs 400 BadDeviceToken, FCM 400 INVALID_ARGUMENT
	WrongApp                     // "0f0e": APNs 400 DeviceTokenNotForTopic, FCM 403 SENDER_ID_MISMATCH
	Throttled                    // "0429": the first 2 requests get 429, then 200
	Unavailable                  // "0503": the first request gets 503, then 200
	Slow                         // "0510": answered after Options.SlowDelay, then 200
)

// Prefixes that select a Behaviour.
const (
	PrefixDead        = "dead"
	PrefixInvalid     = "0bad"
	PrefixWrongApp    = "0f0e"
	PrefixThrottled   = "0429"
	PrefixUnavailable = "0503"
	PrefixSlow        = "0510"
)

func (b Behaviour) String() string {
	switch b {
	case Deliver:
		return "deliver"
	case Dead:
		return "dead"
	case Invalid:
		return "invalid"
	case WrongApp:
		return "wrong-app"
	case Throttled:
		return "throttled"
	case Unavailable:
		return "unavailable"
	case Slow:
		return "slow"
	}
	return "Behaviour(" + strconv.Itoa(int(b)) + ")"
}

// How many requests the transient behaviours fail before they succeed.
const (
	throttledAttempts   = 2
	unavailableAttempts = 1
)

// BehaviourOf returns the behaviour the token's prefix selects.
func BehaviourOf(token string) Behaviour {
	if len(token) < 4 {
		return Deliver
	}
	var p [4]byte
	for i := range p {
		c := token[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		p[i] = c
	}
	switch string(p[:]) {
	case PrefixDead:
		return Dead
	case PrefixInvalid:
		return Invalid
	case PrefixWrongApp:
		return WrongApp
	case PrefixThrottled:
		return Throttled
	case PrefixUnavailable:
		return Unavailable
	case PrefixSlow:
		return Slow
	}
	return Deliver
}

// outcome is what the simulator decided for a request that passed
// validation.
type outcome int

const (
	outcomeDeliver outcome = iota
	outcomeDead
	outcomeInvalid
	outcomeWrongApp
	outcomeThrottled
	outcomeUnavailable
)

// decide applies the token's behaviour and then the global faults. It may
// wait (slow tokens); it returns false if the request was cancelled.
func (s *Server) decide(ctx context.Context, provider, token string, f *faultState) (outcome, bool) {
	switch BehaviourOf(token) {
	case Dead:
		return outcomeDead, true
	case Invalid:
		return outcomeInvalid, true
	case WrongApp:
		return outcomeWrongApp, true
	case Throttled:
		if s.attempts.next(provider, token) <= throttledAttempts {
			return outcomeThrottled, true
		}
	case Unavailable:
		if s.attempts.next(provider, token) <= unavailableAttempts {
			return outcomeUnavailable, true
		}
	case Slow:
		t := time.NewTimer(s.opts.SlowDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, false
		}
	}
	return f.draw(), true
}

// faultState is an immutable Faults plus the random source for its rates.
type faultState struct {
	Faults
	mu  sync.Mutex
	rng *rand.Rand
}

func newFaultState(f Faults) *faultState {
	seed := uint64(f.Seed)
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &faultState{Faults: f, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// draw picks the global fault for one otherwise good request.
func (f *faultState) draw() outcome {
	if f.FailRate <= 0 && f.ThrottleRate <= 0 {
		return outcomeDeliver
	}
	f.mu.Lock()
	u := f.rng.Float64()
	f.mu.Unlock()
	switch {
	case u < f.FailRate:
		return outcomeUnavailable
	case u < f.FailRate+f.ThrottleRate:
		return outcomeThrottled
	}
	return outcomeDeliver
}
