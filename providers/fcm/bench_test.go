package fcm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/providers"
)

// BenchmarkSend measures one send of a typical campaign message.
//
//	go test -run '^$' -bench BenchmarkSend -benchmem ./providers/fcm/
//
// "client" answers in memory, so it shows the client's own cost per send
// (rendering, request, auth, response mapping); "h2" goes through the real
// connection pool and TLS HTTP/2 to pushsim on loopback, from
// parallel senders, and includes pushsim's cost on the same machine.
func BenchmarkSend(b *testing.B) {
	badge := 1
	n := pushd.Notification{
		Title: "Spring sale", Body: "Everything 50% off until midnight 🎉", Badge: &badge, Sound: "default", CollapseID: "spring-sale",
		Data:       map[string]json.RawMessage{"campaign_id": json.RawMessage(`1234`), "deep_link": json.RawMessage(`"app://sale/spring"`)},
		Expiration: time.Now().Add(6 * time.Hour),
	}

	b.Run("client", func(b *testing.B) {
		c, err := New(Options{
			ProjectID:          testProject,
			ServiceAccountJSON: serviceAccount(b, "https://oauth2.example/token"),
			Transport:          &memTransport{},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		p, err := c.Prepare(n)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		done := func(res providers.Result, err error) {
			if err != nil || res.Outcome != providers.Delivered {
				b.Fatalf("Send = %+v, %v", res, err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			c.SendAsync(ctx, p, deviceToken, done) // as a campaign sends
		}
	})

	b.Run("h2", func(b *testing.B) {
		s := newSim(b, pushsim.Options{NoDeliveryLog: true})
		c := s.client(s.options())
		p, err := c.Prepare(n)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(8) // several streams in flight per connection
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := c.Send(ctx, p, deviceToken)
				if err != nil || res.Outcome != providers.Delivered {
					b.Errorf("Send = %+v, %v", res, err)
					return
				}
			}
		})
	})
}

// memTransport answers the token endpoint and messages:send in memory. It is
// for one sender at a time: the send answer is reused.
type memTransport struct {
	resp   http.Response
	body   memBody
	header http.Header
}

type memBody struct{ strings.Reader }

func (*memBody) Close() error { return nil }

const memName = `{"name":"projects/demo-project/messages/0:1500415314455276%31bd1c9631bd1c96"}`

// Go answers at once, as transport.Pool's Go would after the network.
func (t *memTransport) Go(req *http.Request, done func(*http.Response, error)) {
	done(t.RoundTrip(req))
}

func (t *memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	if strings.HasSuffix(req.URL.Path, "/token") {
		return &http.Response{
			StatusCode: 200,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"access_token":"ya29.mem","expires_in":3599,"token_type":"Bearer"}`)),
			Request:    req,
		}, nil
	}
	if t.header == nil {
		t.header = http.Header{"Content-Type": {"application/json; charset=UTF-8"}}
	}
	t.body.Reset(memName)
	t.resp = http.Response{StatusCode: 200, Header: t.header, Body: &t.body, Request: req}
	return &t.resp, nil
}
