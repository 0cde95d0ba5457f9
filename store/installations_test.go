package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
)

// One batch of registrations behaves as the same requests one by one: a
// token moved within the batch or from an older row stays with its last
// installation, and a repeated installation is created once.
func TestRegisterBatch(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	in := func(id, tok string) pushd.Installation {
		return pushd.Installation{App: "A", InstallationID: id, Token: tok, At: now}
	}
	first, err := st.Register(ctx, []pushd.Installation{in("inst-D", "tok2")})
	if err != nil || !first[0].Created {
		t.Fatal(first, err)
	}
	got, err := st.Register(ctx, []pushd.Installation{in("inst-A", "tok1"), in("inst-B", "tok1"), in("inst-C", "tok2"),
		{App: "A", InstallationID: "inst-A", Token: "tok3", Locale: "fr", Attributes: []byte(`{"a":1}`), At: now}})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Created || !got[1].Created || !got[2].Created || got[3].Created || got[0].ID != got[3].ID {
		t.Errorf("results %+v", got)
	}
	want := map[string]string{"inst-A": "tok3", "inst-B": "tok1", "inst-C": "tok2", "inst-D": ""}
	rows, err := st.DB().Query(`SELECT installation_id, push_token, COALESCE(locale, ''), COALESCE(JSON_EXTRACT(attributes, '$.a'), '') FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, tok, locale, a string
		if err := rows.Scan(&id, &tok, &locale, &a); err != nil {
			t.Fatal(err)
		}
		if want[id] != tok {
			t.Errorf("%s holds %q, want %q", id, tok, want[id])
		}
		if id == "inst-A" && (locale != "fr" || a != "1") {
			t.Errorf("inst-A has locale %q and attributes.a %q, want fr and 1 from its last registration", locale, a)
		}
		delete(want, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) != 0 {
		t.Errorf("missing rows %v", want)
	}
	// Installation ids are case-sensitive, in Go and in SQL alike.
	cs, err := st.Register(ctx, []pushd.Installation{in("AbCdEfGh12", "tok8"), in("abcdefgh12", "tok9")})
	if err != nil || !cs[0].Created || !cs[1].Created || cs[0].ID == cs[1].ID || cs[0].ID == 0 {
		t.Errorf("two ids differing in case: %+v %v", cs, err)
	}
	if _, found, err := st.Unregister(ctx, "A", "inst-Z", now); found || err != nil {
		t.Errorf("unregister unknown: %v %v", found, err)
	}
}

// An installation unregistered after a segment run started (its token
// copied among the members) gets nothing from that run.
func TestUnregisterStopsAMemberRun(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	now := time.Now().UTC().Truncate(time.Second)
	var ins []pushd.Installation
	for i := range 5 {
		ins = append(ins, pushd.Installation{App: "A", InstallationID: fmt.Sprintf("inst-%04d", i), Token: fmt.Sprintf("tok%d", i), At: now})
	}
	regs, err := st.Register(ctx, ins)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`CREATE TABLE segment_all (user_id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`INSERT INTO segment_all SELECT id FROM users`); err != nil {
		t.Fatal(err)
	}
	id := insertCampaign(t, st, "A", now)
	_, runIDs := startWith(t, st, id, now, pushd.NewRun{App: "A", Audience: pushd.Audience{Segment: "all"}})
	if _, found, err := st.Unregister(ctx, "A", "inst-0002", now); !found || err != nil {
		t.Fatal(found, err)
	}
	users, _ := drain(t, st, runIDs[0], id, "x", pushd.Sent)
	for _, u := range users {
		if u == regs[2].ID {
			t.Errorf("the unregistered installation (user %d) was in a batch", u)
		}
	}
	if len(users) != 4 {
		t.Errorf("batches held %d users, want 4", len(users))
	}
}
