package main

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// send runs `pushd send` in-process against the env's config.
func (e *env) send(args ...string) (string, error) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	err := run(e.t.Context(), append([]string{"send", "-config", e.config}, args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestSendDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	ios := iosToken("", 1)
	out, err := e.send("-app", "IOS", "-token", ios, "-title", "Hello", "-body", "Test push 🎉",
		"-data", `{"screen": "sale", "n": 3}`, "-badge", "2", "-sound", "default")
	if err != nil || !strings.Contains(out, "delivered: APNs accepted the push (apns-id ") {
		t.Fatalf("APNs send = %v:\n%s", err, out)
	}
	d, ok := e.delivered(pushsim.ProviderAPNs)[ios]
	if !ok || d.Count != 1 {
		t.Fatalf("pushsim has no single APNs delivery to %s: %+v", ios, e.sim.Deliveries())
	}
	for _, part := range []string{`"title":"Hello"`, `"body":"Test push 🎉"`, `"badge":2`, `"sound":"default"`, `"screen":"sale"`, `"n":3`} {
		if !strings.Contains(string(d.Payload), part) {
			t.Errorf("APNs payload %s lacks %s", d.Payload, part)
		}
	}
	if exp, err := strconv.ParseInt(d.Expiration, 10, 64); err != nil ||
		exp < time.Now().Add(50*time.Minute).Unix() || exp > time.Now().Add(61*time.Minute).Unix() {
		t.Errorf("apns-expiration = %q, want now+1h", d.Expiration)
	}

	android := fcmToken("ok-", 1)
	out, err = e.send("-app", "Android", "-token", android, "-title", "Hello", "-body", "Test push")
	if err != nil || !strings.Contains(out, "delivered: FCM accepted the push (message projects/") {
		t.Fatalf("FCM send = %v:\n%s", err, out)
	}
	if d, ok := e.delivered(pushsim.ProviderFCM)[android]; !ok || d.Count != 1 || !strings.Contains(string(d.Payload), `"title":"Hello"`) {
		t.Fatalf("pushsim has no FCM delivery to %s: %+v", android, e.sim.Deliveries())
	}
	if s := e.sim.Stats(); s.APNs.Delivered != 1 || s.FCM.Delivered != 1 || s.FCM.ValidatedOnly != 0 {
		t.Errorf("pushsim stats = %+v, want one delivery per provider", s)
	}
}

func TestSendBadToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	out, err := e.send("-app", "IOS", "-token", iosToken("0bad", 1), "-title", "Hello", "-body", "Test")
	if !errors.Is(err, errReported) {
		t.Errorf("APNs send to a bad token returned %v, want a failure exit", err)
	}
	if !strings.Contains(out, "rejected: BadDeviceToken — the token is not valid for this app and environment") {
		t.Errorf("APNs send to a bad token printed:\n%s", out)
	}

	out, err = e.send("-app", "Android", "-token", fcmToken("0bad-", 1), "-title", "Hello", "-body", "Test")
	if !errors.Is(err, errReported) {
		t.Errorf("FCM send to a bad token returned %v, want a failure exit", err)
	}
	if !strings.Contains(out, "rejected: INVALID_ARGUMENT — The registration token is not a valid FCM registration token") ||
		!strings.Contains(out, "invalid_tokens") {
		t.Errorf("FCM send to a bad token printed:\n%s", out)
	}

	out, err = e.send("-app", "IOS", "-token", "not-hex", "-title", "Hello")
	if !errors.Is(err, errReported) || !strings.Contains(out, "not sent: this is not an APNs device token") {
		t.Errorf("APNs send to a malformed token = %v:\n%s", err, out)
	}
	if s := e.sim.Stats(); len(e.sim.Deliveries()) != 0 || s.APNs.Requests != 1 || s.FCM.Requests != 1 {
		t.Errorf("pushsim saw %+v and delivered %v; want one request per provider, no delivery", s, e.sim.Deliveries())
	}
}

func TestSendDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	android := fcmToken("ok-", 7)
	out, err := e.send("-app", "Android", "-token", android, "-title", "Hello", "-body", "Dry", "-dry-run")
	if err != nil || !strings.Contains(out, "validated: FCM accepted the push and the token without delivering it (validate_only; message projects/") {
		t.Fatalf("FCM dry run = %v:\n%s", err, out)
	}
	if s := e.sim.Stats(); s.FCM.ValidatedOnly != 1 || s.FCM.Delivered != 0 || len(e.sim.Deliveries()) != 0 {
		t.Errorf("after an FCM dry run pushsim has %+v, deliveries %v; want one validate_only request, no delivery", s.FCM, e.sim.Deliveries())
	}

	ios := iosToken("", 7)
	out, err = e.send("-app", "IOS", "-token", ios, "-title", "Hello", "-body", "Dry", "-badge", "0", "-dry-run")
	if err != nil {
		t.Fatalf("APNs dry run = %v:\n%s", err, out)
	}
	for _, want := range []string{
		"validated: the token is well-formed and the notification renders",
		"POST " + e.sim.URL() + "/3/device/" + ios,
		"apns-topic: " + bundleID,
		"apns-push-type: alert",
		"apns-expiration: ",
		"authorization: bearer <ES256 token signed with key " + e.sim.Files().KeyID + " for team " + e.sim.Files().TeamID,
		`{"aps":{"alert":{"title":"Hello","body":"Dry"},"badge":0}}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("APNs dry run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "eyJ") {
		t.Errorf("APNs dry run printed the signed provider token:\n%s", out)
	}
	if s := e.sim.Stats(); s.APNs.Requests != 0 || s.APNsJWT.DistinctTokens != 0 {
		t.Errorf("APNs dry run reached pushsim: %+v", s)
	}

	out, err = e.send("-app", "IOS", "-token", iosToken("0bad", 1), "-body", strings.Repeat("x", 5000), "-dry-run")
	if !errors.Is(err, errReported) || !strings.Contains(out, "not sent: the notification cannot be sent as written") {
		t.Errorf("APNs dry run of an oversize push = %v:\n%s", err, out)
	}
}

func TestSendCredentialFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{InvalidProviderToken: true}})
	out, err := e.send("-app", "IOS", "-token", iosToken("", 1), "-title", "Hello")
	if !errors.Is(err, errReported) {
		t.Errorf("send with rejected credentials returned %v, want a failure exit", err)
	}
	if !strings.Contains(out, "credentials rejected: APNs rejected app IOS's credentials: InvalidProviderToken") ||
		!strings.Contains(out, "fix: check key_id and team_id in [IOS] of "+e.config) {
		t.Errorf("send with rejected credentials printed:\n%s", out)
	}
}

func TestSendUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-token", "ab"}, "-app is required: one of Android, IOS"},
		{[]string{"-app", "MyAp", "-token", "ab"}, `unknown app "MyAp"`},
		{[]string{"-app", "IOS"}, "-token is required"},
		{[]string{"-app", "IOS", "-token", "ab", "-data", "[1]"}, "-data: data must be a JSON object"},
		{[]string{"-app", "IOS", "-token", "ab", "-badge", "x"}, `invalid value "x" for flag -badge: must be a whole number`},
		{[]string{"-app", "IOS", "-token", "ab"}, "not sent: the notification cannot be sent as written: the notification has neither a title nor a body"},
	} {
		out, err := e.send(c.args...)
		if !errors.Is(err, errReported) || !strings.Contains(out, c.want) {
			t.Errorf("pushd send %v = %v:\n%s\nwant %q", c.args, err, out, c.want)
		}
	}
	if s := e.sim.Stats(); s.APNs.Requests+s.FCM.Requests != 0 {
		t.Errorf("usage errors reached pushsim: %+v", s)
	}
}
