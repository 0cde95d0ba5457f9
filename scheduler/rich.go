package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/pushd/pushd"
)

// overridesExample is a correct overrides value, shown with its errors.
const overridesExample = `{"apns": {"aps": {"sound": {"critical": 1, "name": "alarm.caf"}}}, "fcm": {"android": {"notification": {"color": "#ff0000"}}}}`

// checkRich checks the rich and silent push columns that do not depend on
// the provider, and parses overrides into n. The providers' Prepare checks
// the rest (what each protocol accepts, and the size).
func checkRich(n *pushd.Notification, overrides string) error {
	switch n.Priority {
	case "", pushd.High, pushd.Normal:
	default:
		return fmt.Errorf("priority '%s' is not high or normal: high shows the notification at once, normal lets the phone save battery; or NULL", n.Priority)
	}
	switch n.InterruptionLevel {
	case "", "passive", "active", "time-sensitive", "critical":
	default:
		return fmt.Errorf("interruption_level '%s' is not passive, active, time-sensitive or critical (critical needs Apple's permission for the app); or NULL", n.InterruptionLevel)
	}
	if r := n.RelevanceScore; r != nil && (*r < 0 || *r > 1) {
		return fmt.Errorf("relevance_score %g is out of range: use 0 to 1 (1 ranks highest in the summary), or NULL", *r)
	}
	if n.ImageURL != "" {
		if u, err := url.Parse(n.ImageURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("image_url '%s' is not an https URL: the phones load images over https only, e.g. https://cdn.example.com/sale.jpg", n.ImageURL)
		}
	}
	if n.Link != "" {
		if u, err := url.Parse(n.Link); err != nil || u.Scheme == "" {
			return fmt.Errorf("link '%s' is not a link the app can open: write it with its scheme, e.g. myapp://sale/42 or https://example.com/sale", n.Link)
		}
	}
	if len(bytes.TrimSpace([]byte(overrides))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(overrides))
	dec.DisallowUnknownFields()
	var o pushd.Overrides
	if err := dec.Decode(&o); err != nil {
		if strings.Contains(err.Error(), "unknown field") {
			return fmt.Errorf("overrides may only have the keys \"apns\" and \"fcm\" (%v); for example %s", err, overridesExample)
		}
		return fmt.Errorf("overrides is not a JSON object (%v); for example %s", err, overridesExample)
	}
	if dec.More() {
		return fmt.Errorf("overrides has text after the JSON object; for example %s", overridesExample)
	}
	for name, v := range map[string]json.RawMessage{"apns": o.APNs, "fcm": o.FCM} {
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] != '{' && !bytes.Equal(t, []byte("null")) {
			return fmt.Errorf("overrides.%s must be a JSON object of the provider's fields; for example %s", name, overridesExample)
		}
	}
	n.Overrides = o
	return nil
}
