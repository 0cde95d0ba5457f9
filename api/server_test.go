package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/pushid"
)

// fakeStore records what reaches the database.
type fakeStore struct {
	mu    sync.Mutex
	rows  map[string]pushd.Installation // by app/installation
	calls int
	down  bool
	// sent maps run/user to the installation the push went to; opens are
	// the ones counted.
	sent  map[[2]int64]string
	opens map[[2]int64]bool
}

func (f *fakeStore) RecordOpens(_ context.Context, opens []pushd.PushOpen, _ time.Time) ([]pushd.Opened, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	var out []pushd.Opened
	for _, o := range opens {
		k := [2]int64{o.RunID, o.UserID}
		switch {
		case f.sent[k] != o.App+"/"+o.InstallationID:
			out = append(out, pushd.NoPush)
		case f.opens[k]:
			out = append(out, pushd.Repeated)
		default:
			f.opens[k] = true
			out = append(out, pushd.Counted)
		}
	}
	return out, nil
}

func (f *fakeStore) Register(_ context.Context, ins []pushd.Installation) ([]pushd.Registered, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return nil, fmt.Errorf("register: %w", pushd.ErrUnavailable)
	}
	var out []pushd.Registered
	for _, in := range ins {
		k := in.App + "/" + in.InstallationID
		_, had := f.rows[k]
		f.rows[k] = in
		out = append(out, pushd.Registered{ID: int64(len(f.rows)), Created: !had})
	}
	return out, nil
}

func (f *fakeStore) Unregister(_ context.Context, app, id string, _ time.Time) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return 0, false, pushd.ErrUnavailable
	}
	in, ok := f.rows[app+"/"+id]
	if !ok {
		return 0, false, nil
	}
	in.Token = ""
	f.rows[app+"/"+id] = in
	return 1, true, nil
}

const (
	iosKey  = "ios-key-0123456789abcdef"
	iosKey2 = "ios-key-next-0123456789ab"
	fcmKey  = "fcm-key-0123456789abcdef"
	apnsTok = "7f3a0000000000000000000000000000000000000000000000000000000000aa"
	fcmTok  = "dGVzdC10b2tlbi0xMjM0NTY3ODkw:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
)

func newTestAPI(t *testing.T, o Options) (*httptest.Server, *fakeStore) {
	t.Helper()
	st := &fakeStore{rows: map[string]pushd.Installation{}}
	api := New(st, []App{{Name: "IOS", Kind: pushd.APNs, Keys: []string{iosKey, iosKey2}}, {Name: "Android", Kind: pushd.FCM, Keys: []string{fcmKey}}}, o)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv, st
}

type answer struct {
	status int
	header http.Header
	body   problem
	raw    string
}

func call(t *testing.T, srv *httptest.Server, method, path, key, ctype, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

const install = "/v1/apps/IOS/installations/inst-0001"

func TestStatusCodes(t *testing.T) {
	t.Parallel()
	srv, st := newTestAPI(t, Options{})
	good := `{"token": "` + apnsTok + `", "external_id": "cust-42", "timezone": "Europe/Paris", "locale": "fr_CA", "attributes": {"first_name": "Anna"}}`
	for _, tc := range []struct {
		name                   string
		method, path, key, ctp string
		body                   string
		status                 int
		field, message         string
	}{
		{"no key", "PUT", install, "", "application/json", good, 401, "", "Authorization: Bearer"},
		{"wrong key", "PUT", install, "ios-key-0123456789abcdeX", "application/json", good, 401, "", ""},
		{"another app's key", "PUT", install, fcmKey, "application/json", good, 401, "", ""},
		{"unknown app", "PUT", "/v1/apps/Nope/installations/inst-0001", iosKey, "application/json", good, 404, "app", ""},
		{"unknown path", "GET", "/v2/x", iosKey, "", "", 404, "", ""},
		{"text body", "PUT", install, iosKey, "text/plain", good, 415, "", "application/json"},
		{"no content type", "PUT", install, iosKey, "", good, 415, "", ""},
		{"body over 16 KB", "PUT", install, iosKey, "application/json", `{"token": "` + strings.Repeat("a", 17<<10) + `"}`, 413, "", ""},
		{"malformed JSON", "PUT", install, iosKey, "application/json", `{"token": `, 400, "", "cut short"},
		{"not an object", "PUT", install, iosKey, "application/json", `[1]`, 400, "", "JSON object"},
		{"two objects", "PUT", install, iosKey, "application/json", good + good, 400, "", "one object"},
		{"unknown field", "PUT", install, iosKey, "application/json", `{"token": "` + apnsTok + `", "tokn": 1}`, 400, "tokn", "not a field"},
		{"token missing", "PUT", install, iosKey, "application/json", `{"locale": "fr"}`, 400, "token", "required"},
		{"token a number", "PUT", install, iosKey, "application/json", `{"token": 42}`, 400, "token", "string"},
		{"APNs token not hex", "PUT", install, iosKey, "application/json", `{"token": "` + strings.Repeat("z", 64) + `"}`, 400, "token", "hex"},
		{"APNs token short", "PUT", install, iosKey, "application/json", `{"token": "abcd"}`, 400, "token", "64"},
		{"FCM token with a space", "PUT", "/v1/apps/Android/installations/inst-0001", fcmKey, "application/json", `{"token": "` + strings.Repeat("a", 40) + ` b"}`, 400, "token", "letters, digits"},
		{"APNs token for FCM app", "PUT", "/v1/apps/Android/installations/inst-0001", fcmKey, "application/json", `{"token": "short"}`, 400, "token", ""},
		{"installation id short", "PUT", "/v1/apps/IOS/installations/abc", iosKey, "application/json", good, 400, "installation_id", "8 to 64"},
		{"installation id bad char", "PUT", "/v1/apps/IOS/installations/inst%2F0001x", iosKey, "application/json", good, 400, "installation_id", ""},
		{"bad zone", "PUT", install, iosKey, "application/json", `{"token": "` + apnsTok + `", "timezone": "Mars/Olympus"}`, 400, "timezone", "IANA"},
		{"bad locale", "PUT", install, iosKey, "application/json", `{"token": "` + apnsTok + `", "locale": "not a locale"}`, 400, "locale", "BCP 47"},
		{"attributes a list", "PUT", install, iosKey, "application/json", `{"token": "` + apnsTok + `", "attributes": [1]}`, 400, "attributes", "object"},
		{"attributes over 4 KB", "PUT", install, iosKey, "application/json", `{"token": "` + apnsTok + `", "attributes": {"a": "` + strings.Repeat("x", 4<<10) + `"}}`, 400, "attributes", "at most"},
		{"wrong method", "GET", install, iosKey, "", "", 405, "", ""},
		{"DELETE unknown installation", "DELETE", install, iosKey, "", "", 404, "installation_id", ""},
	} {
		a := call(t, srv, tc.method, tc.path, tc.key, tc.ctp, tc.body)
		if a.status != tc.status || a.body.Field != tc.field || !strings.Contains(a.body.Message, tc.message) {
			t.Errorf("%s: %d %s, want %d field %q message with %q", tc.name, a.status, a.raw, tc.status, tc.field, tc.message)
		}
		if a.status == 405 && a.header.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", tc.name)
		}
		if a.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	if st.calls != 1 { // only the DELETE of an unknown installation reached the store
		t.Errorf("rejected requests reached the store %d times", st.calls)
	}

	if a := call(t, srv, "PUT", install, iosKey, "application/json; charset=utf-8", good); a.status != 201 || a.raw != "{\"id\":1}\n" {
		t.Errorf("first PUT: %d %s, want 201 with the id", a.status, a.raw)
	}
	if a := call(t, srv, "PUT", install, iosKey2, "application/json", good); a.status != 200 {
		t.Errorf("second PUT with the next key: %d %s, want 200", a.status, a.raw)
	}
	got := st.rows["IOS/inst-0001"]
	if got.Token != apnsTok || got.ExternalID != "cust-42" || got.Timezone != "Europe/Paris" || got.Locale != "fr-CA" || string(got.Attributes) != `{"first_name":"Anna"}` {
		t.Errorf("stored %+v", got)
	}
	if a := call(t, srv, "DELETE", install, iosKey, "", ""); a.status != 200 || st.rows["IOS/inst-0001"].Token != "" {
		t.Errorf("DELETE: %d %s, token %q", a.status, a.raw, st.rows["IOS/inst-0001"].Token)
	}
	st.down = true
	if a := call(t, srv, "PUT", install, iosKey, "application/json", good); a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Errorf("database down: %d %s, Retry-After %q", a.status, a.raw, a.header.Get("Retry-After"))
	}
}

func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	srv, _ := newTestAPI(t, Options{RateLimit: 2, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	body := `{"token": "` + apnsTok + `"}`
	for i, want := range []int{201, 200, 429} {
		if a := call(t, srv, "PUT", install, iosKey, "application/json", body); a.status != want {
			t.Fatalf("request %d: %d %s, want %d", i+1, a.status, a.raw, want)
		} else if want == 429 && a.header.Get("Retry-After") != "1" {
			t.Errorf("429 with Retry-After %q, want 1", a.header.Get("Retry-After"))
		}
	}
	// Another key of the same app has its own budget.
	if a := call(t, srv, "PUT", install, iosKey2, "application/json", body); a.status != 200 {
		t.Errorf("the other key: %d", a.status)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if a := call(t, srv, "PUT", install, iosKey, "application/json", body); a.status != 200 {
		t.Errorf("a second later: %d", a.status)
	}
}

func TestSetAppsRotatesKeys(t *testing.T) {
	t.Parallel()
	st := &fakeStore{rows: map[string]pushd.Installation{}}
	api := New(st, []App{{Name: "IOS", Kind: pushd.APNs, Keys: []string{iosKey}}}, Options{})
	srv := httptest.NewServer(api)
	defer srv.Close()
	body := `{"token": "` + apnsTok + `"}`
	api.SetApps([]App{{Name: "IOS", Kind: pushd.APNs, Keys: []string{iosKey2}}})
	if a := call(t, srv, "PUT", install, iosKey, "application/json", body); a.status != 401 {
		t.Errorf("the retired key: %d", a.status)
	}
	if a := call(t, srv, "PUT", install, iosKey2, "application/json", body); a.status != 201 {
		t.Errorf("the new key: %d", a.status)
	}
}

func TestOpens(t *testing.T) {
	t.Parallel()
	ids := pushid.New([]byte("test secret"))
	st := &fakeStore{rows: map[string]pushd.Installation{}, sent: map[[2]int64]string{{7, 42}: "IOS/inst-0001"}, opens: map[[2]int64]bool{}}
	srv := httptest.NewServer(New(st, []App{{Name: "IOS", Kind: pushd.APNs, Keys: []string{iosKey}}}, Options{PushIDs: ids}))
	defer srv.Close()
	open := func(push, inst string) answer {
		return call(t, srv, "POST", "/v1/apps/IOS/opens", iosKey, "application/json", `{"push": "`+push+`", "installation_id": "`+inst+`"}`)
	}
	if a := open(ids.ID(7, 42), "inst-0001"); a.status != 200 || a.raw != "{\"counted\":true}\n" {
		t.Errorf("first open: %d %s", a.status, a.raw)
	}
	if a := open(ids.ID(7, 42), "inst-0001"); a.status != 200 || a.raw != "{\"counted\":false}\n" {
		t.Errorf("replayed open: %d %s", a.status, a.raw)
	}
	forged := pushid.New([]byte("guess")).ID(7, 43)
	calls := st.calls
	for _, tc := range []struct{ push, inst, field string }{
		{forged, "inst-0001", "push"},
		{"not-an-id", "inst-0001", "push"},
		{ids.ID(7, 42), "x", "installation_id"},
	} {
		if a := open(tc.push, tc.inst); a.status != 400 || a.body.Field != tc.field {
			t.Errorf("open %q from %q: %d %s, want 400 on %s", tc.push, tc.inst, a.status, a.raw, tc.field)
		}
	}
	if st.calls != calls {
		t.Error("a forged or malformed open reached the store")
	}
	if a := open(ids.ID(8, 42), "inst-0001"); a.status != 400 || a.body.Field != "push" { // signed, but never sent there
		t.Errorf("open of a push never sent: %d %s", a.status, a.raw)
	}
	if len(st.opens) != 1 {
		t.Errorf("opens counted %v, want one", st.opens)
	}
}

// The shapes the database would refuse are refused first, and one item a
// batch's database write refuses fails alone.
func TestDatabaseLimitsAndBatchIsolation(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, Options{})
	deep := strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33)
	for _, body := range []string{
		`{"token": "` + apnsTok + `", "attributes": ` + deep + `}`,
		"{\"token\": \"" + apnsTok + "\", \"attributes\": {\"a\": \"\xff\"}}",
	} {
		if a := call(t, srv, "PUT", install, iosKey, "application/json", body); a.status != 400 || a.body.Field != "attributes" {
			t.Errorf("%.60q: %d %s", body, a.status, a.raw)
		}
	}
	if a := call(t, srv, "PUT", "/v1/apps/Android/installations/inst-0001", fcmKey, "application/json", `{"token": "`+strings.Repeat("a", 1025)+`"}`); a.status != 400 {
		t.Errorf("a 1025-character FCM token: %d", a.status)
	}

	var b *batcher[int, int]
	var first, sawBatch atomic.Bool
	first.Store(true)
	b = newBatcher(1, 10, func(_ context.Context, items []int) ([]int, error) {
		if first.Load() {
			// Hold the first batch until the others wait together, so
			// that the bad item shares a batch with good ones.
			first.Store(false)
			for len(b.in) < 5 {
				runtime.Gosched()
			}
			return items, nil
		}
		if len(items) > 1 {
			sawBatch.Store(true)
		}
		for _, i := range items {
			if i < 0 {
				return nil, errors.New("Error 1406: Data too long")
			}
		}
		return items, nil
	})
	defer b.close()
	var wg sync.WaitGroup
	results := make([]error, 6)
	for i := range results {
		if i == 1 {
			for first.Load() { // item 0 holds the writer
				runtime.Gosched()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := i
			if i == 3 {
				v = -1
			}
			_, results[i] = b.do(context.Background(), v)
		}()
	}
	wg.Wait()
	if !sawBatch.Load() {
		t.Fatal("the items never shared a batch")
	}
	for i, err := range results {
		if (err != nil) != (i == 3) {
			t.Errorf("item %d: %v", i, err)
		}
	}
}
