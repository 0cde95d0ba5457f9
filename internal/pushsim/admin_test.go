package pushsim

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func adminDo(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	e := start(t, Options{})
	admin := e.s.AdminURL()
	tok := e.accessToken()
	for range 2 {
		e.pushAPNs(devToken)
	}
	e.pushAPNs("dead" + devToken[4:])
	e.sendFCM(tok, fcmToken(fcmDevToken))
	e.sendFCM(tok, `{"message":{"topic":"news"}}`)

	status, body := adminDo(t, "GET", admin+"/stats", "")
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil || status != 200 {
		t.Fatalf("GET /stats: %d %s (%v)", status, body, err)
	}
	if !reflect.DeepEqual(st, e.s.Stats()) {
		t.Errorf("GET /stats\n got %+v\nwant %+v", st, e.s.Stats())
	}
	var raw map[string]map[string]any
	json.Unmarshal(body, &raw)
	if raw["apns"]["by_reason"].(map[string]any)["Unregistered"] != 1.0 || raw["apns"]["delivered"] != 2.0 ||
		raw["fcm"]["delivered"] != 2.0 || raw["oauth"]["tokens_issued"] != 1.0 || raw["apns_jwt"]["distinct_tokens"] != 1.0 {
		t.Errorf("stats JSON %s: want snake_case counters for the traffic sent", body)
	}
	if st.APNs.ByStatus["410"] != 1 || st.APNs.ByStatus["200"] != 2 {
		t.Errorf("apns by_status %v, want 200:2 410:1", st.APNs.ByStatus)
	}

	status, body = adminDo(t, "GET", admin+"/deliveries", "")
	if status != 200 {
		t.Fatalf("GET /deliveries: %d", status)
	}
	var ds []Delivery
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d Delivery
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ds = append(ds, d)
	}
	want := map[string]int{"apns " + devToken: 2, "fcm " + fcmDevToken: 1, "fcm /topics/news": 1}
	if len(ds) != len(want) {
		t.Fatalf("deliveries %+v, want %v", ds, want)
	}
	for _, d := range ds {
		if want[d.Provider+" "+d.Token] != d.Count {
			t.Errorf("delivery %s %s count %d, want %v", d.Provider, d.Token, d.Count, want)
		}
		if len(d.Payload) == 0 || d.At.IsZero() {
			t.Errorf("delivery %+v: want payload and time", d)
		}
	}

	status, body = adminDo(t, "POST", admin+"/faults", `{"fail_rate":0.25,"latency":"15ms","goaway_after":100,"seed":9}`)
	if status != 200 {
		t.Fatalf("POST /faults: %d %s", status, body)
	}
	got := e.s.currentFaults()
	if got.FailRate != 0.25 || got.Latency != 15*time.Millisecond || got.GoAwayAfter != 100 || got.Seed != 9 || got.RetryAfter != 1 {
		t.Errorf("faults after POST %+v", got)
	}
	status, body = adminDo(t, "GET", admin+"/faults", "")
	var fj map[string]any
	if err := json.Unmarshal(body, &fj); err != nil || status != 200 || fj["latency"] != "15ms" || fj["fail_rate"] != 0.25 {
		t.Errorf("GET /faults: %d %s", status, body)
	}
	for _, bad := range []string{`{"fail_rate":2}`, `{"latency":"soon"}`, `{"flood":true}`, `not json`} {
		if status, _ := adminDo(t, "POST", admin+"/faults", bad); status != 400 {
			t.Errorf("POST /faults %s: %d, want 400", bad, status)
		}
	}
	if e.s.currentFaults().FailRate != 0.25 {
		t.Error("a rejected POST /faults changed the faults")
	}

	if status, _ := adminDo(t, "POST", admin+"/reset", ""); status != 204 {
		t.Errorf("POST /reset: %d, want 204", status)
	}
	if st := e.s.Stats(); st.APNs.Requests != 0 || st.FCM.Delivered != 0 || len(st.APNs.ByStatus) != 0 || st.OAuth.TokensIssued != 0 {
		t.Errorf("stats after reset %+v, want zero", st)
	}
	if ds := e.s.Deliveries(); len(ds) != 0 {
		t.Errorf("deliveries after reset %+v, want none", ds)
	}
	if status, _ := adminDo(t, "GET", admin+"/reset", ""); status != 405 {
		t.Errorf("GET /reset: %d, want 405", status)
	}
	// Issued access tokens survive a reset.
	e.s.SetFaults(Faults{})
	if r, _ := e.sendFCM(tok, fcmToken(fcmDevToken)); r.status != 200 {
		t.Errorf("access token after reset: %d %s", r.status, r.body)
	}
}

func TestNoDeliveryLog(t *testing.T) {
	t.Parallel()
	e := start(t, Options{NoDeliveryLog: true})
	e.pushAPNs(devToken)
	if ds := e.s.Deliveries(); ds != nil {
		t.Errorf("Deliveries() = %+v, want nil", ds)
	}
	if st := e.s.Stats(); st.APNs.Delivered != 1 {
		t.Errorf("delivered %d, want 1: stats are kept", st.APNs.Delivered)
	}
	if status, body := adminDo(t, "GET", e.s.AdminURL()+"/deliveries", ""); status != 200 || len(body) != 0 {
		t.Errorf("GET /deliveries: %d %q, want 200 and nothing", status, body)
	}
}
