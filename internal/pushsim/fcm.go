package pushsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FCM error codes (FcmError.errorCode) and the RPC statuses they come with.
const (
	fcmInvalidArgument  = "INVALID_ARGUMENT"
	fcmUnregistered     = "UNREGISTERED"
	fcmSenderIDMismatch = "SENDER_ID_MISMATCH"
	fcmQuotaExceeded    = "QUOTA_EXCEEDED"
	fcmUnavailable      = "UNAVAILABLE"

	statusInvalidArgument   = "INVALID_ARGUMENT"
	statusUnauthenticated   = "UNAUTHENTICATED"
	statusNotFound          = "NOT_FOUND"
	statusPermissionDenied  = "PERMISSION_DENIED"
	statusResourceExhausted = "RESOURCE_EXHAUSTED"
	statusUnavailable       = "UNAVAILABLE"
)

const (
	fcmPathPrefix = "/v1/projects/"
	fcmPathSuffix = "/messages:send"
	// fcmMaxBody bounds the whole request; the 4096-byte limit applies to
	// notification plus data.
	fcmMaxBody     = 1 << 20
	fcmMaxPayload  = 4096
	fcmMaxTTLSecs  = 2419200 // 4 weeks
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType = "type.googleapis.com/google.rpc.BadRequest"
)

// Messages Google sends with the errors.
const (
	msgInvalidToken    = "The registration token is not a valid FCM registration token"
	msgUnregistered    = "Requested entity was not found."
	msgSenderMismatch  = "SenderId mismatch"
	msgQuotaExceeded   = "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'."
	msgUnavailable     = "The service is currently unavailable."
	msgUnauthenticated = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	msgTooBig          = "Message is too big"
)

// fcmResult is the answer to one FCM request.
type fcmResult struct {
	status     int    // HTTP status; 0: not decided yet
	rpcStatus  string // error.status
	errorCode  string // FcmError errorCode, "" for none
	message    string
	field      string // BadRequest field violation, for JSON errors
	retryAfter bool
	gone       bool // the client went away: answer nothing
	name       string
}

func fcmError(status int, rpcStatus, errorCode, msg string) fcmResult {
	return fcmResult{status: status, rpcStatus: rpcStatus, errorCode: errorCode, message: msg}
}

func invalidArgument(msg string) fcmResult {
	return fcmError(http.StatusBadRequest, statusInvalidArgument, fcmInvalidArgument, msg)
}

func (s *Server) serveFCM(w http.ResponseWriter, r *http.Request, f *faultState) {
	st := &s.stats.fcm
	st.requests.Add(1)
	req, res := s.checkFCM(r, f)
	if res.status == 0 && !res.gone {
		if m := req.Message; m.Token != nil {
			if a, ok := s.scripts.lookup(ProviderFCM, *m.Token); ok {
				s.writeScripted(w, st, a)
				return
			}
		}
		res = s.sendFCM(r.Context(), req, f)
	}
	if res.gone {
		// Reset the stream: a handler that returns without writing would
		// answer 200, a delivery that never happened.
		panic(http.ErrAbortHandler)
	}
	reason := res.errorCode
	if reason == "" {
		reason = res.rpcStatus
	}
	st.answer(res.status, reason, s.now)
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("fcm request", "path", r.URL.Path, "status", res.status, "reason", reason, "message", res.message)
	}

	var body []byte
	h := w.Header()
	if res.status == http.StatusOK {
		body = []byte(`{"name":"` + res.name + `"}`)
	} else {
		body = fcmErrorBody(res)
		if res.retryAfter {
			h.Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		if res.status == http.StatusUnauthorized {
			h.Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		}
	}
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(res.status)
	w.Write(body)
}

// fcmErrorBody is Google's error shape.
func fcmErrorBody(res fcmResult) []byte {
	type detail struct {
		Type            string `json:"@type"`
		ErrorCode       string `json:"errorCode,omitempty"`
		FieldViolations []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"fieldViolations,omitempty"`
	}
	var e struct {
		Error struct {
			Code    int      `json:"code"`
			Message string   `json:"message"`
			Status  string   `json:"status"`
			Details []detail `json:"details,omitempty"`
		} `json:"error"`
	}
	e.Error.Code, e.Error.Message, e.Error.Status = res.status, res.message, res.rpcStatus
	if res.errorCode != "" {
		e.Error.Details = append(e.Error.Details, detail{Type: fcmErrorType, ErrorCode: res.errorCode})
	}
	if res.field != "" {
		d := detail{Type: badRequestType}
		d.FieldViolations = append(d.FieldViolations, struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		}{res.field, res.message})
		e.Error.Details = append(e.Error.Details, d)
	}
	b, err := json.Marshal(&e)
	if err != nil {
		panic(err) // only strings and ints
	}
	return b
}

// checkFCM authenticates and validates a request. A zero result means it
// is good.
func (s *Server) checkFCM(r *http.Request, f *faultState) (*sendRequest, fcmResult) {
	rest, ok := strings.CutPrefix(r.URL.Path, fcmPathPrefix)
	project, ok2 := strings.CutSuffix(rest, fcmPathSuffix)
	if !ok || !ok2 || project == "" || strings.Contains(project, "/") {
		return nil, fcmError(http.StatusNotFound, statusNotFound, "", "The requested URL "+r.URL.Path+" was not found on this server.")
	}
	if r.Method != http.MethodPost {
		return nil, fcmError(http.StatusNotFound, statusNotFound, "", "Method not found.")
	}
	body, tooLarge, err := readBody(r, fcmMaxBody)
	if err != nil {
		return nil, fcmResult{gone: true}
	}
	if f.RejectAccessTokens || !s.oauth.valid(r.Header.Get("Authorization"), s.now()) {
		return nil, fcmError(http.StatusUnauthorized, statusUnauthenticated, "", msgUnauthenticated)
	}
	if project != s.opts.ProjectID {
		return nil, fcmError(http.StatusNotFound, statusNotFound, "", msgUnregistered)
	}
	// Google's front end reads query parameters as request fields, and
	// messages:send takes all of its fields in the body.
	for name := range r.URL.Query() {
		return nil, fcmResult{status: http.StatusBadRequest, rpcStatus: statusInvalidArgument,
			message: fmt.Sprintf("Invalid JSON payload received. Unknown name %q: Cannot bind query parameter.", name), field: name}
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, fcmError(http.StatusBadRequest, statusInvalidArgument, "",
			fmt.Sprintf("Invalid Content-Type %q: the request body must be application/json.", r.Header.Get("Content-Type")))
	}
	if tooLarge {
		return nil, fcmError(http.StatusBadRequest, statusInvalidArgument, "",
			fmt.Sprintf("Request payload size exceeds the limit: %d bytes.", fcmMaxBody))
	}
	return checkSendBody(body, s.now())
}

// checkSendBody decodes and validates the body of messages:send as of now.
func checkSendBody(body []byte, now time.Time) (*sendRequest, fcmResult) {
	req := new(sendRequest)
	if !json.Valid(body) {
		return nil, fcmResult{status: http.StatusBadRequest, rpcStatus: statusInvalidArgument,
			message: "Invalid JSON payload received. Unexpected token.", field: "*"}
	}
	body = trimJSON(body)
	if body[0] != '{' {
		return nil, fcmResult{status: http.StatusBadRequest, rpcStatus: statusInvalidArgument,
			message: "Invalid JSON payload received. Expected an object.", field: "*"}
	}
	if err := decodeObject(body, "", req); err != nil {
		var de *decodeError
		if !errors.As(err, &de) {
			panic(err)
		}
		field := de.field
		if field == "" {
			field = "*"
		}
		return nil, fcmResult{status: http.StatusBadRequest, rpcStatus: statusInvalidArgument, message: de.msg, field: field}
	}
	if req.Message == nil {
		return nil, invalidArgument("Request contains an invalid argument: message is required.")
	}
	if msg := validateMessage(req.Message, now); msg != "" {
		return nil, invalidArgument(msg)
	}
	return req, fcmResult{}
}

// ValidateFCMRequest reports what the simulator's messages:send would
// object to in body, a SendMessageRequest in JSON, as of now; nil means it
// would accept it. Authentication, the project and the token's behaviour
// are not part of it. It lets fuzz tests check a client's rendering without
// a round trip.
func ValidateFCMRequest(body []byte, now time.Time) error {
	if _, res := checkSendBody(body, now); res.status != 0 {
		return errors.New(res.message)
	}
	return nil
}

func isJSONContentType(v string) bool {
	if v == "application/json" || strings.HasPrefix(v, "application/json;") {
		return true
	}
	ct, _, err := mime.ParseMediaType(v)
	return err == nil && ct == "application/json"
}

// topicPatternFCM is the FCM topic name syntax.
var topicPatternFCM = regexp.MustCompile(`^[a-zA-Z0-9-_.~%]{1,900}$`)

// validateMessage returns what Google would object to in m as of now, or "".
func validateMessage(m *message, now time.Time) string {
	n := 0
	for _, t := range []*string{m.Token, m.Topic, m.Condition} {
		if t != nil {
			n++
		}
	}
	switch {
	case n == 0:
		return "Recipient of the message is not set."
	case n > 1:
		return "Invalid value at 'message' (oneof), oneof field 'target' is already set. Set only one of token, topic and condition."
	case m.Token != nil && *m.Token == "":
		return msgInvalidToken
	case m.Topic != nil && !topicPatternFCM.MatchString(strings.TrimPrefix(*m.Topic, "/topics/")):
		return fmt.Sprintf("Invalid topic name %q.", *m.Topic)
	case m.Condition != nil && strings.TrimSpace(*m.Condition) == "":
		return "Invalid condition expression provided."
	}
	if msg := checkDataKeys(m.Data.m); msg != "" {
		return msg
	}
	if n := m.Notification; n != nil {
		if msg := checkImageURL("message.notification.image", n.Image); msg != "" {
			return msg
		}
	}
	if a := m.Android; a != nil {
		if msg := checkDataKeys(a.Data.m); msg != "" {
			return msg
		}
		if a.TTL != "" && !a.TTL.atMost(fcmMaxTTLSecs) {
			return fmt.Sprintf("Invalid value at 'message.android.ttl': %s exceeds the maximum of %ds (4 weeks).", a.TTL, fcmMaxTTLSecs)
		}
		if n := a.Notification; n != nil {
			if msg := checkImageURL("message.android.notification.image", n.Image); msg != "" {
				return msg
			}
		}
	}
	if a := m.APNs; a != nil {
		if o := a.FCMOptions; o != nil {
			if msg := checkImageURL("message.apns.fcm_options.image", o.Image); msg != "" {
				return msg
			}
		}
		if msg := checkAPNsConfig(a, m.Notification, now); msg != "" {
			return msg
		}
	}
	if compactLen(m.notificationRaw)+compactLen(m.Data.raw) > fcmMaxPayload {
		return msgTooBig
	}
	return ""
}

// checkImageURL applies Google's "the URL of an image that is going to be
// downloaded on the device" to an image field at path: an absolute https
// URL. Google documents no rejection for other URLs; the simulator is
// stricter, because the device cannot download a relative or schemeless
// URL, and iOS (App Transport Security) refuses plain http. An empty
// string is the proto3 default, the field left unset, and passes.
func checkImageURL(path, v string) string {
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Sprintf("Invalid value at '%s': %q is not an https URL.", path, v)
	}
	return ""
}

// checkAPNsConfig applies the APNs rules to what FCM forwards to APNs:
// the headers by the same rules as a direct APNs request, and the aps
// rules of aps.go to apns.payload. n is the message's notification, which
// FCM turns into aps.alert (title and body) for Apple devices.
//
// For a payload APNs would refuse, FCM answers INVALID_ARGUMENT: it does
// not hand APNs's reason back, and the message is the client's to fix.
func checkAPNsConfig(a *apnsConfig, n *notification, now time.Time) string {
	for k, v := range a.Headers.m {
		bad := false
		switch strings.ToLower(k) {
		case "apns-expiration":
			bad = !validExpiration(v, now)
		case "apns-priority":
			bad = !validPriority(v)
		case "apns-collapse-id":
			bad = !validCollapseID(v)
		case "apns-push-type":
			_, ok := apnsTopicSuffix[v]
			bad = !ok
		case "apns-id":
			bad = !isUUID(v)
		case "apns-topic":
			bad = !topicPattern.MatchString(v)
		default:
			// Apple documents no other request header; a name outside the
			// list is a typo that nobody would act on.
			return fmt.Sprintf("Invalid APNs headers: %q is not an APNs request header.", k)
		}
		if bad {
			return fmt.Sprintf("Invalid APNs headers: %s %q.", k, v)
		}
	}
	var aps []byte
	if len(a.Payload) != 0 {
		members(a.Payload, func(key string, val []byte) error {
			if key == "aps" {
				aps = val // the last wins, as for json.Unmarshal
			}
			return nil
		})
	}
	var f apsFacts
	if aps != nil {
		if aps[0] != '{' {
			return "Invalid APNs payload: aps must be a dictionary."
		}
		var problem string
		if f, problem = scanAPS(aps); problem != "" {
			return "Invalid APNs payload: " + problem + "."
		}
	}
	hasAlert := f.alert != nil || n != nil && (n.Title != "" || n.Body != "")
	if p := f.valueProblem(hasAlert); p != "" {
		return "Invalid APNs payload: " + p + "."
	}
	// Only the background type is checked against the payload. FCM adds
	// to aps on the way to APNs (message.notification becomes aps.alert)
	// and Google does not document all it adds, so an alert push without
	// an alert in apns.payload may reach APNs with one. A background push
	// is decidable: Google's background example sets content-available in
	// apns.payload itself, and FCM removes nothing from aps.
	pushType, typed := a.Headers.getFold("apns-push-type")
	silent := !hasAlert && f.sound == nil && f.badge == nil && string(f.contentAvailable) == "1"
	if !typed && silent {
		// Google's priority page: a data message to an Apple device must
		// use apns-priority 5; FCM sends it to APNs as a background push.
		if prio, _ := a.Headers.getFold("apns-priority"); prio != "5" {
			return "Invalid APNs headers: a data message with content-available needs apns-priority \"5\", got " + strconv.Quote(prio) + "."
		}
	}
	if pushType == "background" {
		// FCM forwards apns-priority as it is; left out, APNs uses 10,
		// which Apple calls an error for the background type.
		if prio, ok := a.Headers.getFold("apns-priority"); prio != "5" {
			got := strconv.Quote(prio)
			if !ok {
				got = "none (APNs then uses 10)"
			}
			return "Invalid APNs headers: apns-push-type background needs apns-priority \"5\", got " + got + "."
		}
		if p := f.pushTypeProblem(pushType, hasAlert); p != "" {
			if f.alert == nil && hasAlert {
				p += " (FCM turns message.notification into aps.alert)"
			}
			return "Invalid APNs payload: " + p + "."
		}
	}
	return ""
}

// checkDataKeys rejects the keys FCM reserves. Google documents them in
// lower case; the simulator compares case-insensitively, and refuses an
// empty key, to be on the safe side of Google's checks.
func checkDataKeys(data map[string]string) string {
	for k := range data {
		l := strings.ToLower(k)
		switch {
		case l == "":
			return "Invalid data payload key: a key must not be empty."
		case l == "from", l == "notification", l == "message_type",
			strings.HasPrefix(l, "google"), strings.HasPrefix(l, "gcm"):
			return fmt.Sprintf("Invalid data payload key: %q is a reserved key.", k)
		}
	}
	return ""
}

// sendFCM applies the token's behaviour and the faults to a valid request.
func (s *Server) sendFCM(ctx context.Context, req *sendRequest, f *faultState) fcmResult {
	m := req.Message
	var target string
	switch {
	case m.Token != nil:
		target = *m.Token
	case m.Topic != nil:
		target = "/topics/" + strings.TrimPrefix(*m.Topic, "/topics/")
	default:
		target = "condition:" + *m.Condition
	}
	behaviourToken := ""
	if m.Token != nil {
		behaviourToken = target
	}
	out, ok := s.decide(ctx, ProviderFCM, behaviourToken, f)
	if !ok {
		return fcmResult{gone: true}
	}
	switch out {
	case outcomeDead:
		return fcmError(http.StatusNotFound, statusNotFound, fcmUnregistered, msgUnregistered)
	case outcomeInvalid:
		return invalidArgument(msgInvalidToken)
	case outcomeWrongApp:
		return fcmError(http.StatusForbidden, statusPermissionDenied, fcmSenderIDMismatch, msgSenderMismatch)
	case outcomeThrottled:
		res := fcmError(http.StatusTooManyRequests, statusResourceExhausted, fcmQuotaExceeded, msgQuotaExceeded)
		res.retryAfter = true
		return res
	case outcomeUnavailable:
		res := fcmError(http.StatusServiceUnavailable, statusUnavailable, fcmUnavailable, msgUnavailable)
		res.retryAfter = true
		return res
	}

	name := s.messageName()
	if req.ValidateOnly {
		s.stats.fcm.validatedOnly.Add(1)
		return fcmResult{status: http.StatusOK, name: name}
	}
	s.stats.fcm.delivered.Add(1)
	if s.delivery == nil && s.pushes == nil {
		return fcmResult{status: http.StatusOK, name: name}
	}
	d := Delivery{
		Token:    target,
		Provider: ProviderFCM,
		Payload:  req.messageRaw,
		At:       s.now(),
		Received: arrival(ctx),
	}
	if a := m.Android; a != nil {
		d.Priority = a.Priority.value
		d.AndroidTTL = string(a.TTL)
		if a.Notification != nil {
			d.AndroidTag = a.Notification.Tag
		}
	}
	if a := m.APNs; a != nil {
		d.Topic, _ = a.Headers.getFold("apns-topic")
		d.PushType, _ = a.Headers.getFold("apns-push-type")
		d.Expiration, _ = a.Headers.getFold("apns-expiration")
		d.CollapseID, _ = a.Headers.getFold("apns-collapse-id")
	}
	if s.pushes != nil {
		s.pushes.record(d.push(), req.messageRaw)
	}
	if s.delivery != nil {
		s.delivery.record(d)
	}
	return fcmResult{status: http.StatusOK, name: name}
}

// messageName is a message resource name like FCM's.
func (s *Server) messageName() string {
	b := make([]byte, 0, 64)
	b = append(b, "projects/"...)
	b = append(b, s.opts.ProjectID...)
	b = append(b, "/messages/0:"...)
	b = strconv.AppendInt(b, s.now().UnixMicro(), 10)
	b = append(b, '%')
	b = strconv.AppendUint(b, s.msgSeq.Add(1), 16)
	return string(b)
}
