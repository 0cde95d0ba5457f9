package scheduler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
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

// variantName is what a variant's name may be: it is shown in status and
// stored in the ledger (VARCHAR(32)).
var variantName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// checkVariants checks campaign_variants and holdout_percent.
func checkVariants(c *pushd.Campaign) error {
	if c.HoldoutPercent < 0 || c.HoldoutPercent > 50 {
		return fmt.Errorf("holdout_percent %d is out of range: use 0 to 50 (the share of the audience that gets nothing, for comparison)", c.HoldoutPercent)
	}
	if len(c.Variants) == 0 {
		return nil
	}
	if len(c.Translations) > 0 {
		return errors.New("the campaign has both campaign_variants and campaign_translations, which pushd cannot combine yet: test variants in one language, or translate without variants")
	}
	if len(c.Variants) == 1 {
		return fmt.Errorf("campaign_variants has one row (%s): add a second variant to compare, or delete it and write the text in the campaign", c.Variants[0].Name)
	}
	for _, v := range c.Variants {
		if !variantName.MatchString(v.Name) {
			return fmt.Errorf("campaign_variants: name '%s' must be 1 to 32 letters, digits or ._-, such as A or short_title", v.Name)
		}
		if v.Weight < 1 || v.Weight > 1000 {
			return fmt.Errorf("campaign_variants (%s): weight %d is out of range: use 1 to 1000 (variants get users in proportion to their weights)", v.Name, v.Weight)
		}
		if v.ImageURL != "" {
			if u, err := url.Parse(v.ImageURL); err != nil || u.Scheme != "https" || u.Host == "" {
				return fmt.Errorf("campaign_variants (%s): image_url '%s' is not an https URL", v.Name, v.ImageURL)
			}
		}
		if v.Link != "" {
			if u, err := url.Parse(v.Link); err != nil || u.Scheme == "" {
				return fmt.Errorf("campaign_variants (%s): link '%s' is not a link the app can open: write it with its scheme, e.g. myapp://sale/42", v.Name, v.Link)
			}
		}
	}
	return nil
}
