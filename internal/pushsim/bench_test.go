package pushsim

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// The benchmarks measure the simulator and an in-process Go HTTP/2 client
// together, over one connection; each op is one request.

func benchmarkSim(b *testing.B, e *env, newReq func() *http.Request) {
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := e.client.Do(newReq())
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkAPNs(b *testing.B) {
	e := start(b, Options{NoDeliveryLog: true, Now: time.Now})
	benchmarkSim(b, e, func() *http.Request { return e.apnsRequest(devToken, alertBody) })
}

func BenchmarkAPNsDeliveryLog(b *testing.B) {
	e := start(b, Options{Now: time.Now})
	benchmarkSim(b, e, func() *http.Request { return e.apnsRequest(devToken, alertBody) })
}

func BenchmarkFCM(b *testing.B) {
	e := start(b, Options{NoDeliveryLog: true, Now: time.Now})
	tok := e.accessToken()
	body := `{"message":{"token":"` + fcmDevToken + `","notification":{"title":"Hi","body":"there"},` +
		`"data":{"campaign":"42"},"android":{"priority":"high","ttl":"3600s","notification":{"tag":"t"}},` +
		`"apns":{"headers":{"apns-priority":"10","apns-expiration":"1900000000"},"payload":{"aps":{"sound":"default"}}}}}`
	benchmarkSim(b, e, func() *http.Request { return e.fcmRequest(e.s.Files().ProjectID, tok, body) })
}

func BenchmarkAPNsKeepPushes(b *testing.B) {
	e := start(b, Options{NoDeliveryLog: true, KeepPushes: 10000, Now: time.Now})
	benchmarkSim(b, e, func() *http.Request { return e.apnsRequest(devToken, alertBody) })
}

// BenchmarkAPNsPayloadCheck is the payload checks alone, for a rich alert.
func BenchmarkAPNsPayloadCheck(b *testing.B) {
	body := []byte(`{"aps":{"alert":{"title":"Hi","body":"there"},"sound":"default","badge":3,"mutable-content":1,` +
		`"interruption-level":"time-sensitive","relevance-score":0.5,"thread-id":"t"},"image":"https://example.com/a.png"}`)
	b.ReportAllocs()
	for b.Loop() {
		if res := checkAPNsPayload(body, "alert"); res.status != 0 {
			b.Fatal(res.detail)
		}
	}
}
