package pushd

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// PushType names a push provider, spelled as in config.ini's push_type
// (which matches it case-insensitively).
type PushType string

// The supported providers.
const (
	APNs PushType = "APNs"
	FCM  PushType = "FCM"
)

// Notification is what one campaign run sends. It is built from the
// campaign row when the run starts and frozen into pushd_runs.notification
// as JSON (the tags are that snapshot's format), so that every instance
// sends the same thing even if staff edit the row mid-run.
//
// A notification without templates or translations is the same for every
// recipient, so a provider renders it once per run with Prepare. One with
// them (see package content) is rendered per user into a plain
// Notification, which the provider then prepares for that user alone.
type Notification struct {
	Title    string `json:"title"`
	Body     string `json:"body"`
	Subtitle string `json:"subtitle,omitempty"`
	// Data holds the campaign's custom key/values, each value raw JSON.
	// APNs carries them as top-level payload keys with their JSON types; FCM
	// needs strings and converts scalars (see fcm.Prepare).
	Data  map[string]json.RawMessage `json:"data,omitempty"`
	Badge *int                       `json:"badge,omitempty"` // nil leaves the badge alone
	Sound string                     `json:"sound,omitempty"` // empty plays no sound
	// CollapseID makes a resent copy replace the first notification on the
	// device instead of showing twice (apns-collapse-id, android tag).
	CollapseID string `json:"collapse_id,omitempty"`

	// ImageURL is an https image shown with the notification: FCM
	// notification.image; on APNs mutable-content 1 and the URL under the
	// payload key "image_url" for the app's notification service extension.
	ImageURL string `json:"image_url,omitempty"`
	// Link is a deep link the app opens when the notification is tapped,
	// carried under the key "link" (APNs payload, FCM data).
	Link string `json:"link,omitempty"`
	// Category is the APNs category (actions) and FCM android click_action.
	Category string `json:"category,omitempty"`
	// ThreadID groups notifications on iOS (aps thread-id).
	ThreadID string `json:"thread_id,omitempty"`
	// ChannelID is the Android notification channel.
	ChannelID string `json:"channel_id,omitempty"`
	// InterruptionLevel is the iOS interruption level: passive, active,
	// time-sensitive or critical; empty leaves it to the system (active).
	InterruptionLevel string `json:"interruption_level,omitempty"`
	// RelevanceScore (0–1) ranks the notification in the iOS summary; nil
	// sends none.
	RelevanceScore *float64 `json:"relevance_score,omitempty"`
	// Priority is "high" or "normal"; empty is high for an alert and normal
	// for a silent push.
	Priority Priority `json:"priority,omitempty"`
	// Silent makes a background push that only wakes the app: no alert,
	// sound or badge; APNs push type background at priority 5, an FCM
	// data-only message.
	Silent bool `json:"silent,omitempty"`
	// Overrides are merged into each provider's payload last, for fields
	// pushd does not model.
	Overrides Overrides `json:"overrides,omitzero"`

	// Translations are the campaign's variants per locale, and Templated
	// says some text uses placeholders: either makes the notification
	// personal, rendered per user (package content). Providers never see
	// them.
	Translations []Translation `json:"translations,omitempty"`
	Templated    bool          `json:"templated,omitempty"`
	// Variants split the audience by a stable hash of (campaign, user) in
	// proportion to their weights, and HoldoutPercent of it gets nothing
	// (recorded held_out): see Assign.
	Variants       []Variant `json:"variants,omitempty"`
	HoldoutPercent int       `json:"holdout_percent,omitempty"`

	// Expiration is the absolute deadline after which the provider must not
	// deliver. The zero time means no deadline. It is the run's deadline,
	// which the run row keeps, so it is not part of the snapshot.
	Expiration time.Time `json:"-"`
}

// Priority is a notification's delivery priority.
type Priority string

// The priorities: APNs 10 and 5, FCM HIGH and NORMAL.
const (
	High   Priority = "high"
	Normal Priority = "normal"
)

// Effective is p, or the default for a push that is silent or not.
func (p Priority) Effective(silent bool) Priority {
	switch {
	case p != "":
		return p
	case silent:
		return Normal
	}
	return High
}

// Overrides are raw JSON objects merged into a provider's payload: APNs
// into the payload (its aps key by key), FCM into the message object.
type Overrides struct {
	APNs json.RawMessage `json:"apns,omitempty"`
	FCM  json.RawMessage `json:"fcm,omitempty"`
}

// Translation is a campaign's text for one locale (campaign_translations).
type Translation struct {
	Locale   string `json:"locale"`
	Title    string `json:"title"`
	Body     string `json:"body"`
	Subtitle string `json:"subtitle,omitempty"`
}

// Variant is a campaign_variants row: its text replaces the campaign's for
// the users it is given to; empty image_url and link keep the campaign's.
type Variant struct {
	Name     string `json:"name"`
	Weight   int    `json:"weight"`
	Title    string `json:"title"`
	Body     string `json:"body"`
	Subtitle string `json:"subtitle,omitempty"`
	ImageURL string `json:"image_url,omitempty"`
	Link     string `json:"link,omitempty"`
}

// Personal reports whether n is rendered per user.
func (n *Notification) Personal() bool {
	return n.Templated || len(n.Translations) > 0 || len(n.Variants) > 0 || n.HoldoutPercent > 0
}

// CheckFields checks the fields whose rules are the same for every
// provider: what a silent push may not carry, the priority, the image URL,
// the interruption level and the relevance score. Its errors name the
// campaigns column at fault. A provider's Prepare checks the rest.
func (n *Notification) CheckFields() error {
	if n.Silent {
		var set []string
		for _, f := range [...]struct {
			name string
			set  bool
		}{
			{"title", n.Title != ""}, {"body", n.Body != ""}, {"subtitle", n.Subtitle != ""},
			{"sound", n.Sound != ""}, {"badge", n.Badge != nil}, {"image_url", n.ImageURL != ""},
			{"category", n.Category != ""}, {"interruption_level", n.InterruptionLevel != ""},
		} {
			if f.set {
				set = append(set, f.name)
			}
		}
		if len(set) > 0 {
			return fmt.Errorf("a silent push shows nothing, but this one sets %s: leave title, body, subtitle, sound, badge, image_url, category and interruption_level empty, or set silent to 0",
				strings.Join(set, ", "))
		}
	}
	switch n.Priority {
	case "", High, Normal:
	default:
		return fmt.Errorf("priority %q is unknown; use %q or %q, or leave it empty", n.Priority, High, Normal)
	}
	if n.ImageURL != "" {
		// The device downloads the image itself, and iOS refuses plain
		// http (App Transport Security).
		if u, err := url.Parse(n.ImageURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("image_url %q is not a full https address; use one such as https://example.com/sale.png", n.ImageURL)
		}
	}
	switch n.InterruptionLevel {
	case "", "passive", "active", "time-sensitive", "critical":
	default:
		return fmt.Errorf("interruption_level %q is not one Apple knows; use passive, active, time-sensitive or critical, or leave it empty", n.InterruptionLevel)
	}
	if s := n.RelevanceScore; s != nil && !(*s >= 0 && *s <= 1) { // NaN fails too
		return fmt.Errorf("relevance_score is %v, but it must be a number from 0 to 1", *s)
	}
	return nil
}
