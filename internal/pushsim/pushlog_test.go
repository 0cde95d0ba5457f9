package pushsim

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestPushes(t *testing.T) {
	t.Parallel()
	e := start(t, Options{KeepPushes: 10})
	tok := e.accessToken()

	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("alert push: %d %s", r.status, r.body)
	}
	silent := e.apnsRequest(devToken, `{"aps":{"content-available":1},"sync":"inbox"}`)
	silent.Header.Set("apns-push-type", "background")
	silent.Header.Set("apns-priority", "5")
	silent.Header.Set("apns-collapse-id", "inbox")
	if r := e.do(silent); r.status != 200 {
		t.Fatalf("silent push: %d %s", r.status, r.body)
	}
	rich := `{"message":{"token":"` + fcmDevToken + `","notification":{"title":"Hi","image":"https://example.com/a.png"},` +
		`"android":{"priority":"high"},"apns":{"headers":{"apns-push-type":"alert","apns-priority":"10"},"payload":{"aps":{"mutable-content":1}}}}}`
	if r, _ := e.sendFCM(tok, rich); r.status != 200 {
		t.Fatalf("rich FCM message: %d %s", r.status, r.body)
	}
	if r, _ := e.sendFCM(tok, `{"message":{"token":"`+fcmDevToken+`","data":{"k":"v"}}}`); r.status != 200 {
		t.Fatalf("data-only FCM message: %d %s", r.status, r.body)
	}
	// Not deliveries: none of these is kept.
	if r, _ := e.sendFCM(tok, `{"validate_only":true,"message":{"token":"`+fcmDevToken+`","data":{"k":"v"}}}`); r.status != 200 {
		t.Fatalf("validate_only: %d %s", r.status, r.body)
	}
	if r := e.pushAPNs("dead" + devToken[4:]); r.status != 410 {
		t.Fatalf("dead token: %d %s", r.status, r.body)
	}
	if r := e.do(e.apnsRequest(devToken, `{"aps":{}}`)); r.status != 400 {
		t.Fatalf("rejected push: %d %s", r.status, r.body)
	}
	e.s.Script(ProviderAPNs, devToken, Answer{Status: 200})
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("scripted push: %d %s", r.status, r.body)
	}

	ps := e.s.Pushes()
	if len(ps) != 4 {
		t.Fatalf("pushes %+v, want 4", ps)
	}
	for i, p := range ps {
		if p.Seq != i+1 || !p.At.Equal(e.now()) {
			t.Errorf("push %d: seq %d at %v, want seq %d at %v", i, p.Seq, p.At, i+1, e.now())
		}
	}

	alert := ps[0]
	if alert.Provider != ProviderAPNs || alert.Token != devToken || alert.PushType != "alert" || alert.Priority != "10" || alert.Topic != testBundle {
		t.Errorf("alert push %+v", alert)
	}
	if v, ok := alert.Value("aps", "alert", "title"); !ok || v != "Hi" {
		t.Errorf("aps.alert.title %v %v, want Hi", v, ok)
	}

	bg := ps[1]
	if bg.PushType != "background" || bg.Priority != "5" || bg.CollapseID != "inbox" {
		t.Errorf("background push %+v", bg)
	}
	if v, _ := bg.Value("aps", "content-available"); v != 1.0 {
		t.Errorf("aps.content-available %v, want 1", v)
	}
	if _, ok := bg.Value("aps", "alert"); ok {
		t.Error("background push has aps.alert")
	}
	if bg.Payload["sync"] != "inbox" {
		t.Errorf("payload %v, want the custom key", bg.Payload)
	}

	fcmRich := ps[2]
	if fcmRich.Provider != ProviderFCM || fcmRich.Token != fcmDevToken || fcmRich.Priority != "high" || fcmRich.PushType != "alert" {
		t.Errorf("rich FCM push %+v", fcmRich)
	}
	if v, ok := fcmRich.Value("notification", "image"); !ok || v != "https://example.com/a.png" {
		t.Errorf("notification.image %v %v", v, ok)
	}
	if v, _ := fcmRich.Value("apns", "headers", "apns-priority"); v != "10" {
		t.Errorf("apns.headers.apns-priority %v, want 10", v)
	}

	dataOnly := ps[3]
	if _, ok := dataOnly.Payload["notification"]; ok {
		t.Errorf("data-only message %v has a notification", dataOnly.Payload)
	}
	if v, _ := dataOnly.Value("data", "k"); v != "v" {
		t.Errorf("data.k %v, want v", v)
	}
	if _, ok := dataOnly.Value("data", "k", "deeper"); ok {
		t.Error("Value descended into a string")
	}

	// Each call decodes afresh: changing one answer does not change the next.
	ps[0].Payload["aps"] = nil
	if _, ok := e.s.Pushes()[0].Value("aps", "alert"); !ok {
		t.Error("Pushes shares its maps between calls")
	}

	// The admin API serves the same records.
	status, body := adminDo(t, "GET", e.s.AdminURL()+"/pushes", "")
	if status != 200 {
		t.Fatalf("GET /pushes: %d %s", status, body)
	}
	var lines []Push
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		var p Push
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, p)
	}
	if len(lines) != 4 || lines[1].PushType != "background" || lines[2].Payload["notification"] == nil {
		t.Errorf("GET /pushes %s: want the 4 pushes", body)
	}

	e.s.Reset()
	if ps := e.s.Pushes(); len(ps) != 0 {
		t.Errorf("after Reset: %+v, want none", ps)
	}
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("push after Reset: %d %s", r.status, r.body)
	}
	if ps := e.s.Pushes(); len(ps) != 1 || ps[0].Seq != 1 {
		t.Errorf("after Reset and a push: %+v, want one with seq 1", ps)
	}
}

func TestPushesKeepsTheLatest(t *testing.T) {
	t.Parallel()
	e := start(t, Options{KeepPushes: 3})
	for i := range 7 {
		body := `{"aps":{"alert":"` + strconv.Itoa(i+1) + `"}}`
		if r := e.do(e.apnsRequest(devToken, body)); r.status != 200 {
			t.Fatalf("push %d: %d %s", i+1, r.status, r.body)
		}
		ps := e.s.Pushes()
		if want := min(i+1, 3); len(ps) != want {
			t.Fatalf("after %d pushes: %d kept, want %d", i+1, len(ps), want)
		}
		for j, p := range ps {
			seq := i + 1 - len(ps) + 1 + j
			if v, _ := p.Value("aps", "alert"); p.Seq != seq || v != strconv.Itoa(seq) {
				t.Fatalf("after %d pushes, #%d: seq %d alert %v, want %d", i+1, j, p.Seq, v, seq)
			}
		}
	}
	if st := e.s.Stats().APNs; st.Delivered != 7 {
		t.Errorf("delivered %d, want 7: the log drops, the stats do not", st.Delivered)
	}
}

func TestPushesOff(t *testing.T) {
	t.Parallel()
	e := start(t, Options{NoDeliveryLog: true})
	if r := e.pushAPNs(devToken); r.status != 200 {
		t.Fatalf("push: %d %s", r.status, r.body)
	}
	if ps := e.s.Pushes(); ps == nil || len(ps) != 0 {
		t.Errorf("Pushes() = %#v without KeepPushes, want an empty slice", ps)
	}
	if _, err := Start(Options{Dir: t.TempDir(), KeepPushes: -1}); err == nil || !strings.Contains(err.Error(), "KeepPushes") {
		t.Errorf("KeepPushes -1: %v, want an error naming it", err)
	}
}

// TestPushesConcurrent records from many goroutines while reading: under
// -race, and every push is numbered once.
func TestPushesConcurrent(t *testing.T) {
	t.Parallel()
	e := start(t, Options{KeepPushes: 1000})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				resp, err := e.client.Do(e.apnsRequest(devToken, alertBody))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d", resp.StatusCode)
				}
				e.s.Pushes()
			}
		})
	}
	wg.Wait()
	ps := e.s.Pushes()
	if len(ps) != workers*each {
		t.Fatalf("%d pushes, want %d", len(ps), workers*each)
	}
	for i, p := range ps {
		if p.Seq != i+1 {
			t.Fatalf("push %d has seq %d", i, p.Seq)
		}
	}
}
