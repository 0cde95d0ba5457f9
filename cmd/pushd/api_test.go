package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/internal/pushsim"
)

const (
	iosAPIKey     = "ios-test-key-0123456789"
	androidAPIKey = "android-test-key-0123456789"
)

// apiEnv adds [API] on a free port and the apps' keys to the env's config.
func (e *env) apiEnv() string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[API]\nlisten = %s\nrate_limit = 0\n", addr)
	f.Close()
	e.setKey("IOS", "api_keys", iosAPIKey)
	e.setKey("Android", "api_keys", androidAPIKey)
	return "http://" + addr
}

// apiCall makes one request as an app would.
func apiCall(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func waitAPI(t *testing.T, base string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the device API", func() bool {
		res, err := http.Get(base + "/v1/")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
}

// usersSnapshot is the users table as text, to show a rejected request
// changed nothing.
func (e *env) usersSnapshot() string {
	e.t.Helper()
	var s string
	if err := e.db.QueryRow(`SELECT COALESCE(GROUP_CONCAT(CONCAT_WS('|', id, app, installation_id, push_token, external_id, timezone,
		locale, attributes, registered_at) ORDER BY id SEPARATOR '\n'), '') FROM users`).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// TestDeviceAPI registers, moves and unregisters installations through the
// real binary's API; a campaign then reaches exactly the registered
// tokens, once each; a token re-registered after a 410 is used again;
// every rejected request leaves the users table as it was.
func TestDeviceAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{KeepPushes: 100})
	base := e.apiEnv()
	d := e.start()
	defer d.stop(t)
	waitAPI(t, base)
	inst := func(app, id string) string { return base + "/v1/apps/" + app + "/installations/" + id }
	put := func(app, key, id, body string) (int, int64) {
		t.Helper()
		status, out := apiCall(t, "PUT", inst(app, id), key, body)
		var r struct{ ID int64 }
		_ = json.Unmarshal([]byte(out), &r)
		if status >= 300 {
			t.Logf("PUT %s: %d %s", id, status, out)
		}
		return status, r.ID
	}
	tokA, tokA2, tokB, tokDead := iosToken("", 1), iosToken("", 2), iosToken("", 3), iosToken("dead", 4)
	tokC := fcmToken("api-", 5) + "0123456789abcdefghij"
	if s, _ := put("IOS", iosAPIKey, "install-A", `{"token": "`+tokA+`", "external_id": "cust-1", "timezone": "Europe/Paris", "locale": "fr_CA", "attributes": {"first_name": "Anna"}}`); s != 201 {
		t.Fatalf("PUT A: %d", s)
	}
	_, idA := put("IOS", iosAPIKey, "install-A", `{"token": "`+tokA2+`"}`) // refresh: a new token
	if s, idB := put("IOS", iosAPIKey, "install-B", `{"token": "`+tokB+`"}`); s != 201 || idB == idA {
		t.Fatalf("PUT B: %d id %d", s, idB)
	}
	// B's token moves to D (the app was reinstalled): B keeps its row, without it.
	put("IOS", iosAPIKey, "install-D", `{"token": "`+tokB+`"}`)
	put("IOS", iosAPIKey, "install-E", `{"token": "`+tokDead+`"}`)
	put("Android", androidAPIKey, "install-C", `{"token": "`+tokC+`"}`)
	if s, _ := apiCall(t, "DELETE", inst("Android", "install-C"), androidAPIKey, ""); s != 200 {
		t.Fatalf("DELETE C: %d", s)
	}
	var tokOfB, tokOfC, locA string
	e.db.QueryRow(`SELECT push_token FROM users WHERE installation_id = 'install-B'`).Scan(&tokOfB)
	e.db.QueryRow(`SELECT push_token FROM users WHERE installation_id = 'install-C'`).Scan(&tokOfC)
	e.db.QueryRow(`SELECT COALESCE(locale, '') FROM users WHERE id = ?`, idA).Scan(&locA)
	if tokOfB != "" || tokOfC != "" || locA != "" {
		t.Errorf("after the move and the DELETE: B %q, C %q; A's locale %q (a PUT replaces the whole installation)", tokOfB, tokOfC, locA)
	}

	// Rejected requests change nothing.
	before := e.usersSnapshot()
	for _, r := range []struct {
		method, app, key, id, body string
		want                       int
	}{
		{"PUT", "IOS", "", "install-A", `{"token": "` + tokA + `"}`, 401},
		{"PUT", "IOS", androidAPIKey, "install-A", `{"token": "` + tokA + `"}`, 401},
		{"PUT", "Nope", iosAPIKey, "install-A", `{"token": "` + tokA + `"}`, 404},
		{"PUT", "IOS", iosAPIKey, "install-A", `{"token": "xyz"}`, 400},
		{"PUT", "IOS", iosAPIKey, "install-A", `{"token": "` + tokA + `", "timezone": "Europe/Pariss"}`, 400},
		{"PUT", "IOS", iosAPIKey, "install-A", `{"token": "` + tokA + `", "locale": "??"}`, 400},
		{"PUT", "IOS", iosAPIKey, "install-A", `{"token": "` + tokA + `", "attributes": "x"}`, 400},
		{"PUT", "IOS", iosAPIKey, "install-A", `{"token": "` + tokA + `", "extra": 1}`, 400},
		{"PUT", "IOS", iosAPIKey, "x", `{"token": "` + tokA + `"}`, 400},
		{"PUT", "IOS", iosAPIKey, "install-A", `{"token": "` + strings.Repeat("a", 20000) + `"}`, 413},
		{"GET", "IOS", iosAPIKey, "install-A", ``, 405},
		{"DELETE", "IOS", iosAPIKey, "install-Z", ``, 404},
	} {
		if s, out := apiCall(t, r.method, inst(r.app, r.id), r.key, r.body); s != r.want {
			t.Errorf("%s %s %s: %d %s, want %d", r.method, r.app, r.id, s, out, r.want)
		}
	}
	req, _ := http.NewRequest("PUT", inst("IOS", "install-A"), strings.NewReader(`{"token": "`+tokA+`"}`))
	req.Header.Set("Authorization", "Bearer "+iosAPIKey)
	req.Header.Set("Content-Type", "text/plain")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 415 {
		t.Errorf("text/plain: %v %v, want 415", res, err)
	}
	if after := e.usersSnapshot(); after != before {
		t.Errorf("rejected requests changed users:\nbefore %s\nafter  %s", before, after)
	}

	// A campaign reaches A's new token and D (B's old token) once each;
	// not B, not the unregistered C. E registered two hours ago, and
	// pushsim says its token died an hour ago (410): invalid.
	e.exec(`UPDATE users SET registered_at = NOW(3) - INTERVAL 2 HOUR WHERE installation_id = 'install-E'`)
	id := e.campaign("IOS,Android", time.Now(), nil)
	r := e.waitStatus(id, time.Minute, "done")
	ios, android := e.delivered(pushsim.ProviderAPNs), e.delivered(pushsim.ProviderFCM)
	_, gotA := ios[tokA2]
	_, gotD := ios[tokB]
	if len(ios) != 2 || !gotA || !gotD || len(android) != 0 || r.Invalid != 1 || r.Targeted != 3 {
		t.Errorf("first campaign: APNs %v, FCM %v, row %+v; want A's new token and D's, nothing on FCM, E invalid", keys(ios), keys(android), r)
	}
	// Opens: the push id in A's push counts once, from A only.
	pushIDOf := func(token string) string {
		for _, p := range e.sim.Pushes() {
			if p.Token == token {
				v, _ := p.Value("push_id")
				s, _ := v.(string)
				return s
			}
		}
		return ""
	}
	idA2, idD := pushIDOf(tokA2), pushIDOf(tokB)
	if idA2 == "" || idD == "" || idA2 == idD {
		t.Fatalf("push ids %q and %q: each push must carry its own", idA2, idD)
	}
	open := func(push, installation string) (int, string) {
		return apiCall(t, "POST", base+"/v1/apps/IOS/opens", iosAPIKey, `{"push": "`+push+`", "installation_id": "`+installation+`"}`)
	}
	for _, o := range []struct {
		push, inst string
		status     int
		out        string
	}{
		{idA2, "install-A", 200, `{"counted":true}`},
		{idA2, "install-A", 200, `{"counted":false}`},                   // a replay
		{idA2, "install-D", 400, `"field":"push"`},                      // another installation's push
		{idA2[:len(idA2)-2] + "AA", "install-A", 400, `"field":"push"`}, // forged
		{idD, "install-D", 200, `{"counted":true}`},
	} {
		if s, out := open(o.push, o.inst); s != o.status || !strings.Contains(out, o.out) {
			t.Errorf("open %s from %s: %d %s, want %d %s", o.push, o.inst, s, out, o.status, o.out)
		}
	}
	var runOpened, rowOpened int
	e.db.QueryRow(`SELECT SUM(opened) FROM pushd_runs WHERE campaign_id = ?`, id).Scan(&runOpened)
	e.db.QueryRow(`SELECT opened FROM campaigns WHERE id = ?`, id).Scan(&rowOpened)
	if runOpened != 2 || rowOpened != 2 {
		t.Errorf("opened: runs %d, row %d; want 2", runOpened, rowOpened)
	}

	// Without a new registration, E is left out of the next campaign.
	id2 := e.campaign("IOS", time.Now(), nil)
	if r2 := e.waitStatus(id2, time.Minute, "done"); r2.Targeted != 2 {
		t.Errorf("second campaign %+v: want A and D only", r2)
	}
	// E registers its token again (the app reinstalled): the next campaign
	// tries it again. pushsim still calls it dead, as of an hour ago,
	// which is before the new registration: failed, not invalid.
	put("IOS", iosAPIKey, "install-E", `{"token": "`+tokDead+`"}`)
	id3 := e.campaign("IOS", time.Now(), nil)
	if r3 := e.waitStatus(id3, time.Minute, "done"); r3.Targeted != 3 || r3.Failed != 1 || !strings.Contains(r3.Reason, "registered again since") {
		t.Errorf("third campaign %+v: want A, D and the re-registered E", r3)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDeviceAPIDatabaseRestart registers installations from 8 clients
// while the database restarts, then while pushd is killed -9 and started
// again: requests fail with 503 and Retry-After while the database is
// down (or with no answer while pushd is), and every acknowledged
// registration is in users afterwards.
func TestDeviceAPIDatabaseRestart(t *testing.T) {
	t.Parallel()
	db := dbtest.StartPrivate(t)
	e := newEnvOn(t, db.Options(), "", pushsim.Options{})
	base := e.apiEnv()
	d := e.start()
	defer func() { d.stop(t) }() // the d of the end: it is restarted below
	waitAPI(t, base)

	var (
		mu       sync.Mutex
		acked    = map[string]string{} // installation → token
		statuses = map[int]int{}
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("client%d-%06d", c, i)
				tok := iosToken("", c*1000000+i)
				s, _ := apiCall(t, "PUT", base+"/v1/apps/IOS/installations/"+id, iosAPIKey, `{"token": "`+tok+`"}`)
				mu.Lock()
				statuses[s]++
				if s == 201 || s == 200 {
					acked[id] = tok
				}
				mu.Unlock()
				if s == 503 {
					time.Sleep(100 * time.Millisecond) // as Retry-After asks, shortened
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, 30*time.Second, "registrations", func() bool { return count() >= 200 })
	db.Stop()
	waitFor(t, 30*time.Second, "a 503", func() bool { mu.Lock(); defer mu.Unlock(); return statuses[503] > 0 })
	db.Start()
	n := count()
	waitFor(t, 60*time.Second, "registrations after the restart", func() bool { return count() >= n+200 })
	// And pushd itself killed under load: what it acknowledged is stored.
	d.kill9(t)
	d = e.start()
	n = count()
	waitFor(t, 60*time.Second, "registrations after pushd's restart", func() bool { return count() >= n+200 })
	close(stop)
	wg.Wait()
	for s := range statuses {
		if s != 201 && s != 200 && s != 503 && s != 0 { // 0: no answer, pushd was down
			t.Errorf("%d answers %d", statuses[s], s)
		}
	}
	rows, err := e.db.Query(`SELECT installation_id, push_token FROM users WHERE app = 'IOS'`)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for rows.Next() {
		var id, tok string
		rows.Scan(&id, &tok)
		have[id] = tok
	}
	rows.Close()
	lost := 0
	for id, tok := range acked {
		if have[id] != tok {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged registrations are not in users", lost, len(acked))
	}
	t.Logf("answers %v; %d acknowledged, all in users", statuses, len(acked))
}
