package apns

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/providers"
)

var benchNotification = pushd.Notification{
	Title: "Summer sale", Body: "Everything 50% off until Sunday", Sound: "default",
	CollapseID: "sale-2026",
}

// BenchmarkSend sends over real HTTP/2 and TLS to the fake APNs, one send at
// a time. Its allocations include the fake server's and the HTTP/2 stack's;
// BenchmarkSendClientOnly isolates the client's own.
func BenchmarkSend(b *testing.B) {
	s := newSim(b, pushsim.Options{NoDeliveryLog: true})
	c := newTestClient(b, s, nil)
	n := benchNotification
	n.Expiration = s.clock.Now().Add(time.Hour)
	p := mustPrepare(b, c, n)
	tok := deviceToken(42)
	ctx := context.Background()
	mustSend(b, c, p, tok) // connect and verify the JWT outside the timing
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Send(ctx, p, tok)
		if err != nil || res.Outcome != providers.Delivered {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

// BenchmarkSendParallel is BenchmarkSend with concurrent senders sharing the
// client's connections, as a campaign run does.
func BenchmarkSendParallel(b *testing.B) {
	s := newSim(b, pushsim.Options{NoDeliveryLog: true})
	c := newTestClient(b, s, nil)
	n := benchNotification
	n.Expiration = s.clock.Now().Add(time.Hour)
	p := mustPrepare(b, c, n)
	tok := deviceToken(42)
	mustSend(b, c, p, tok)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			res, err := c.Send(ctx, p, tok)
			if err != nil || res.Outcome != providers.Delivered {
				b.Errorf("%+v %v", res, err)
				return
			}
		}
	})
}

// BenchmarkSendClientOnly measures the client's own cost per send, as a
// campaign sends (SendAsync), over a transport that answers 200 at once.
func BenchmarkSendClientOnly(b *testing.B) {
	s := newSim(b, pushsim.Options{NoDeliveryLog: true})
	c := newTestClient(b, s, func(o *Options) { o.Transport = newAnswerTransport() })
	n := benchNotification
	n.Expiration = s.clock.Now().Add(time.Hour)
	p := mustPrepare(b, c, n)
	tok := deviceToken(42)
	ctx := context.Background()
	done := func(res providers.Result, err error) {
		if err != nil || res.Outcome != providers.Delivered {
			b.Fatal(res, err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		c.SendAsync(ctx, p, tok, done)
	}
}

func BenchmarkPrepare(b *testing.B) {
	c := &Client{topic: testTopic}
	n := benchNotification
	n.Data = map[string]json.RawMessage{"deeplink": json.RawMessage(`"app://sale/2026"`), "campaign": json.RawMessage(`1234`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Prepare(n); err != nil {
			b.Fatal(err)
		}
	}
}
