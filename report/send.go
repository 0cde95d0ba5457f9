package report

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/config"
	"github.com/pushd/pushd/providers"
	"github.com/pushd/pushd/providers/apns"
	"github.com/pushd/pushd/providers/fcm"
)

// Bearer replaces an APNs provider token by its header and claims.
func Bearer(v string) string {
	jwt, ok := strings.CutPrefix(v, "bearer ")
	parts := strings.Split(jwt, ".")
	if !ok || len(parts) != 3 {
		return "bearer <hidden>"
	}
	var head struct{ Alg, Kid string }
	var claims struct {
		Iss string
		Iat int64
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cl, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(h, &head) != nil || json.Unmarshal(cl, &claims) != nil {
		return "bearer <hidden>"
	}
	return fmt.Sprintf("bearer <%s token signed with key %s for team %s at %s, hidden>", head.Alg, head.Kid, claims.Iss,
		time.Unix(claims.Iat, 0).UTC().Format(time.DateTime+" UTC"))
}

// App is the first line `pushd send` prints: where the push goes.
func App(a *config.App) string {
	switch a.PushType {
	case pushd.APNs:
		endpoint := a.Endpoint
		if endpoint == "" {
			endpoint = apns.DevelopmentEndpoint
			if a.Environment == apns.Production {
				endpoint = apns.ProductionEndpoint
			}
		}
		return fmt.Sprintf("app %s: APNs %s, bundle_id %s, key %s of team %s, at %s", a.Name, a.Environment, a.BundleID, a.KeyID, a.TeamID, endpoint)
	case pushd.FCM:
		endpoint := a.Endpoint
		if endpoint == "" {
			endpoint = fcm.DefaultEndpoint
		}
		return fmt.Sprintf("app %s: FCM project %s, service account %s, at %s", a.Name, a.ProjectID, a.ClientEmail, endpoint)
	}
	return "app " + a.Name
}

// ShortToken shows the ends of a long token, which is enough to tell two
// apart and keeps the line short.
func ShortToken(t string) string {
	if len(t) <= 24 {
		return t
	}
	return fmt.Sprintf("%s…%s (%d characters)", t[:12], t[len(t)-8:], len(t))
}

// explanations say what a provider's reason means, for the person holding
// the test phone. Reasons not listed are explained by the provider's own
// detail text.
var explanations = map[string]string{
	// APNs.
	apns.ReasonBadDeviceToken:         "the token is not valid for this app and environment: a development (sandbox) token sent to production or the other way round, a token of another app, or a mistyped one",
	apns.ReasonDeviceTokenNotForTopic: "the token belongs to another app: it was registered under a different bundle id",
	apns.ReasonUnregistered:           "the token is no longer active: the app was uninstalled, or the phone stopped accepting its pushes",
	apns.ReasonExpiredToken:           "the token has expired: open the app so that it registers a new one",
	apns.ReasonPayloadTooLarge:        "the notification is over 4 KB: shorten the title, body or data",
	apns.ReasonTooManyRequests:        "too many pushes to this phone in a short time: wait a minute and try again",
	// Every `pushd send` signs a provider token of its own.
	apns.ReasonTooManyProviderTokenUpdates: "Apple saw too many new provider tokens for this key: every pushd send signs one, and Apple wants at most one every 20 minutes; wait, and send test pushes less often",
	// FCM.
	"UNREGISTERED":       "the token is no longer registered: the app was uninstalled, or the token expired or was replaced",
	"SENDER_ID_MISMATCH": "the token belongs to another Firebase project, not the one of this app's service account",
	"QUOTA_EXCEEDED":     "the Firebase project's sending quota is used up for now: wait and try again",
	"UNAVAILABLE":        "FCM is unavailable for a moment: try again",
	"INTERNAL":           "FCM had an internal error: try again",
	"MALFORMED_TOKEN":    "this is not an FCM registration token",
}

// Result words a provider's answer for a person, and says whether
// it counts as success: delivered, or accepted by a validate-only send.
func Result(kind pushd.PushType, app, cfgPath string, res providers.Result, validateOnly bool) (string, bool) {
	what := explanations[res.Reason]
	if what == "" {
		what = res.Detail
	} else if res.Detail != "" && kind == pushd.FCM && !strings.EqualFold(res.Detail, what) {
		what += " (Google says: " + res.Detail + ")"
	}
	reason := res.Reason
	if reason == "" {
		reason = fmt.Sprintf("HTTP %d", res.Status)
	}
	if what != "" {
		reason += " — " + what
	}
	switch res.Outcome {
	case providers.Delivered:
		id := ""
		if res.ID != "" {
			label := "apns-id"
			if kind == pushd.FCM {
				label = "message"
			}
			id = fmt.Sprintf(" (%s %s)", label, res.ID)
		}
		if validateOnly {
			if res.ID != "" {
				id = "; message " + res.ID
			}
			return fmt.Sprintf("validated: %s accepted the push and the token without delivering it (validate_only%s)", kind, id), true
		}
		return fmt.Sprintf("delivered: %s accepted the push%s", kind, id), true
	case providers.TokenInvalid:
		return "rejected: " + reason + "\n" +
			"a campaign would count this user as invalid_tokens and skip the token until the app registers it again", false
	case providers.CredentialFailure:
		msg := fmt.Sprintf("credentials rejected: %s rejected app %s's credentials: %s", kind, app, reason)
		if res.Hint != "" {
			msg += fmt.Sprintf("\nfix: %s in [%s] of %s, then run this again", res.Hint, app, cfgPath)
		}
		return msg, false
	case providers.Retryable:
		msg := "not delivered, for now: " + reason
		if res.RetryAfter > 0 {
			msg += fmt.Sprintf("\n%s asks to wait %s before trying again", kind, res.RetryAfter)
		}
		return msg + "\na campaign would retry this push up to max_attempts times", false
	}
	return "rejected: " + reason, false
}
