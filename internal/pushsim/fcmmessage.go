package pushsim

import "encoding/json"

// The FCM HTTP v1 request, field by field as in Google's reference for
// projects.messages.send. Only what the simulator checks or records is
// interpreted; the rest is there so that it is accepted and type-checked.

const fcmTypePrefix = "type.googleapis.com/google.firebase.fcm.v1."

// sendRequest is the body of messages:send.
type sendRequest struct {
	ValidateOnly bool
	Message      *message
	messageRaw   json.RawMessage
}

func (r *sendRequest) protoType() string { return fcmTypePrefix + "SendMessageRequest" }

func (r *sendRequest) field(name string) any {
	switch name {
	case "validate_only":
		return &r.ValidateOnly
	case "message":
		if r.Message == nil {
			r.Message = new(message)
		}
		return r.Message
	}
	return nil
}

func (r *sendRequest) keepRaw(name string, raw []byte) {
	if name == "message" {
		r.messageRaw = raw
	}
}

type message struct {
	Name         string
	Data         stringMap
	Notification *notification
	Android      *androidConfig
	Webpush      *webpushConfig
	APNs         *apnsConfig
	FCMOptions   *fcmOptions
	Token        *string
	Topic        *string
	Condition    *string

	notificationRaw json.RawMessage
}

func (m *message) protoType() string { return fcmTypePrefix + "Message" }

func (m *message) field(name string) any {
	switch name {
	case "name":
		return &m.Name
	case "data":
		return &m.Data
	case "notification":
		return alloc(&m.Notification)
	case "android":
		return alloc(&m.Android)
	case "webpush":
		return alloc(&m.Webpush)
	case "apns":
		return alloc(&m.APNs)
	case "fcm_options":
		return alloc(&m.FCMOptions)
	case "token":
		return &m.Token
	case "topic":
		return &m.Topic
	case "condition":
		return &m.Condition
	}
	return nil
}

func (m *message) keepRaw(name string, raw []byte) {
	if name == "notification" {
		m.notificationRaw = raw
	}
}

// alloc allocates *p if needed and returns it.
func alloc[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}

type notification struct{ Title, Body, Image string }

func (n *notification) protoType() string { return fcmTypePrefix + "Notification" }

func (n *notification) field(name string) any {
	switch name {
	case "title":
		return &n.Title
	case "body":
		return &n.Body
	case "image":
		return &n.Image
	}
	return nil
}

// androidMessagePriority is android.priority. Google's reference names
// NORMAL and HIGH, and its own samples send "normal" and "high"; those four
// spellings pass. Google's front end, which maps JSON onto the protobuf,
// may also take "High" or the enum numbers 0 and 1, but no documentation
// or sample sends them, so the simulator, stricter than Google, refuses
// them as a client mistake.
var androidMessagePriority = &enumType{
	name:      fcmTypePrefix + "AndroidMessagePriority",
	values:    []string{"NORMAL", "HIGH"},
	namesOnly: true,
}

type androidConfig struct {
	CollapseKey            string
	Priority               enum
	TTL                    duration
	RestrictedPackageName  string
	Data                   stringMap
	Notification           *androidNotification
	FCMOptions             *androidFCMOptions
	DirectBootOK           bool
	BandwidthConstrainedOK bool
	RestrictedSatelliteOK  bool
}

func (a *androidConfig) protoType() string { return fcmTypePrefix + "AndroidConfig" }

func (a *androidConfig) field(name string) any {
	switch name {
	case "collapse_key":
		return &a.CollapseKey
	case "priority":
		return a.Priority.of(androidMessagePriority)
	case "ttl":
		return &a.TTL
	case "restricted_package_name":
		return &a.RestrictedPackageName
	case "data":
		return &a.Data
	case "notification":
		return alloc(&a.Notification)
	case "fcm_options":
		return alloc(&a.FCMOptions)
	case "direct_boot_ok":
		return &a.DirectBootOK
	case "bandwidth_constrained_ok":
		return &a.BandwidthConstrainedOK
	case "restricted_satellite_ok":
		return &a.RestrictedSatelliteOK
	}
	return nil
}

var (
	notificationPriority = &enumType{
		name:   fcmTypePrefix + "AndroidNotification.NotificationPriority",
		values: []string{"PRIORITY_UNSPECIFIED", "PRIORITY_MIN", "PRIORITY_LOW", "PRIORITY_DEFAULT", "PRIORITY_HIGH", "PRIORITY_MAX"},
	}
	notificationVisibility = &enumType{
		name:   fcmTypePrefix + "AndroidNotification.Visibility",
		values: []string{"VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"},
	}
	notificationProxy = &enumType{
		name:   fcmTypePrefix + "AndroidNotification.Proxy",
		values: []string{"PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"},
	}
)

type androidNotification struct {
	Title, Body, Icon, Color, Sound, Tag, ClickAction string
	BodyLocKey, TitleLocKey, ChannelID, Ticker, Image string
	BodyLocArgs, TitleLocArgs                         []string
	Sticky, LocalOnly, DefaultSound                   bool
	DefaultVibrateTimings, DefaultLightSettings       bool
	BypassProxyNotification                           bool
	EventTime                                         timestamp
	NotificationPriority, Visibility, Proxy           enum
	VibrateTimings                                    []duration
	NotificationCount                                 int32
	LightSettings                                     *lightSettings
}

func (n *androidNotification) protoType() string { return fcmTypePrefix + "AndroidNotification" }

func (n *androidNotification) field(name string) any {
	switch name {
	case "title":
		return &n.Title
	case "body":
		return &n.Body
	case "icon":
		return &n.Icon
	case "color":
		return &n.Color
	case "sound":
		return &n.Sound
	case "tag":
		return &n.Tag
	case "click_action":
		return &n.ClickAction
	case "body_loc_key":
		return &n.BodyLocKey
	case "body_loc_args":
		return &n.BodyLocArgs
	case "title_loc_key":
		return &n.TitleLocKey
	case "title_loc_args":
		return &n.TitleLocArgs
	case "channel_id":
		return &n.ChannelID
	case "ticker":
		return &n.Ticker
	case "sticky":
		return &n.Sticky
	case "event_time":
		return &n.EventTime
	case "local_only":
		return &n.LocalOnly
	case "notification_priority":
		return n.NotificationPriority.of(notificationPriority)
	case "default_sound":
		return &n.DefaultSound
	case "default_vibrate_timings":
		return &n.DefaultVibrateTimings
	case "default_light_settings":
		return &n.DefaultLightSettings
	case "vibrate_timings":
		return &n.VibrateTimings
	case "visibility":
		return n.Visibility.of(notificationVisibility)
	case "notification_count":
		return &n.NotificationCount
	case "light_settings":
		return alloc(&n.LightSettings)
	case "image":
		return &n.Image
	case "bypass_proxy_notification":
		return &n.BypassProxyNotification
	case "proxy":
		return n.Proxy.of(notificationProxy)
	}
	return nil
}

type lightSettings struct {
	Color                             *color
	LightOnDuration, LightOffDuration duration
}

func (l *lightSettings) protoType() string { return fcmTypePrefix + "LightSettings" }

func (l *lightSettings) field(name string) any {
	switch name {
	case "color":
		return alloc(&l.Color)
	case "light_on_duration":
		return &l.LightOnDuration
	case "light_off_duration":
		return &l.LightOffDuration
	}
	return nil
}

type color struct{ Red, Green, Blue, Alpha float64 }

func (c *color) protoType() string { return "type.googleapis.com/google.type.Color" }

func (c *color) field(name string) any {
	switch name {
	case "red":
		return &c.Red
	case "green":
		return &c.Green
	case "blue":
		return &c.Blue
	case "alpha":
		return &c.Alpha
	}
	return nil
}

type androidFCMOptions struct{ AnalyticsLabel string }

func (o *androidFCMOptions) protoType() string { return fcmTypePrefix + "AndroidFcmOptions" }

func (o *androidFCMOptions) field(name string) any {
	if name == "analytics_label" {
		return &o.AnalyticsLabel
	}
	return nil
}

type webpushConfig struct {
	Headers, Data stringMap
	Notification  structValue
	FCMOptions    *webpushFCMOptions
}

func (w *webpushConfig) protoType() string { return fcmTypePrefix + "WebpushConfig" }

func (w *webpushConfig) field(name string) any {
	switch name {
	case "headers":
		return &w.Headers
	case "data":
		return &w.Data
	case "notification":
		return &w.Notification
	case "fcm_options":
		return alloc(&w.FCMOptions)
	}
	return nil
}

type webpushFCMOptions struct{ Link, AnalyticsLabel string }

func (o *webpushFCMOptions) protoType() string { return fcmTypePrefix + "WebpushFcmOptions" }

func (o *webpushFCMOptions) field(name string) any {
	switch name {
	case "link":
		return &o.Link
	case "analytics_label":
		return &o.AnalyticsLabel
	}
	return nil
}

type apnsConfig struct {
	Headers           stringMap
	Payload           structValue
	FCMOptions        *apnsFCMOptions
	LiveActivityToken string
}

func (a *apnsConfig) protoType() string { return fcmTypePrefix + "ApnsConfig" }

func (a *apnsConfig) field(name string) any {
	switch name {
	case "headers":
		return &a.Headers
	case "payload":
		return &a.Payload
	case "fcm_options":
		return alloc(&a.FCMOptions)
	case "live_activity_token":
		return &a.LiveActivityToken
	}
	return nil
}

type apnsFCMOptions struct{ AnalyticsLabel, Image string }

func (o *apnsFCMOptions) protoType() string { return fcmTypePrefix + "ApnsFcmOptions" }

func (o *apnsFCMOptions) field(name string) any {
	switch name {
	case "analytics_label":
		return &o.AnalyticsLabel
	case "image":
		return &o.Image
	}
	return nil
}

type fcmOptions struct{ AnalyticsLabel string }

func (o *fcmOptions) protoType() string { return fcmTypePrefix + "FcmOptions" }

func (o *fcmOptions) field(name string) any {
	if name == "analytics_label" {
		return &o.AnalyticsLabel
	}
	return nil
}
