package pushsim

import (
	"cmp"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// APNs reasons, as Apple documents them.
const (
	reasonBadCollapseID               = "BadCollapseId"
	reasonBadDeviceToken              = "BadDeviceToken"
	reasonBadExpirationDate           = "BadExpirationDate"
	reasonBadMessageID                = "BadMessageId"
	reasonBadPriority                 = "BadPriority"
	reasonBadTopic                    = "BadTopic"
	reasonDeviceTokenNotForTopic      = "DeviceTokenNotForTopic"
	reasonDuplicateHeaders            = "DuplicateHeaders"
	reasonInvalidPushType             = "InvalidPushType"
	reasonMissingDeviceToken          = "MissingDeviceToken"
	reasonMissingTopic                = "MissingTopic"
	reasonPayloadEmpty                = "PayloadEmpty"
	reasonTopicDisallowed             = "TopicDisallowed"
	reasonExpiredProviderToken        = "ExpiredProviderToken"
	reasonInvalidProviderToken        = "InvalidProviderToken"
	reasonMissingProviderToken        = "MissingProviderToken"
	reasonBadPath                     = "BadPath"
	reasonMethodNotAllowed            = "MethodNotAllowed"
	reasonUnregistered                = "Unregistered"
	reasonPayloadTooLarge             = "PayloadTooLarge"
	reasonTooManyProviderTokenUpdates = "TooManyProviderTokenUpdates"
	reasonTooManyRequests             = "TooManyRequests"
	reasonServiceUnavailable          = "ServiceUnavailable"
	// reasonBadPayload is ours: Apple documents no reason for a body that
	// is not a JSON object with an "aps" dictionary, nor for the aps values
	// the simulator refuses (see aps.go).
	reasonBadPayload = "BadPayload"
)

const (
	apnsPathPrefix     = "/3/device/"
	apnsMaxPayload     = 4096
	apnsMaxVoIPPayload = 5120
	apnsMaxCollapseID  = 64
	apnsHeaderPrefix   = "Apns-"   // canonical form of the apns-* headers
	apnsIDHeader       = "Apns-Id" // canonical forms save an allocation per lookup
	bearerScheme       = "bearer "
)

// apnsTopicSuffix maps each push type to the suffix its topic carries after
// the bundle id.
var apnsTopicSuffix = map[string]string{
	"alert":        "",
	"background":   "",
	"mdm":          "",
	"location":     ".location-query",
	"voip":         ".voip",
	"complication": ".complication",
	"fileprovider": ".pushkit.fileprovider",
	"liveactivity": ".push-type.liveactivity",
	"pushtotalk":   ".voip-ptt",
}

// topicPattern is a reverse-DNS name: at least two dot-separated labels.
var topicPattern = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`)

// apnsResult is the answer to one APNs request.
type apnsResult struct {
	status    int // 0: not decided yet
	reason    string
	detail    string // why, for the debug log: APNs answers the reason only
	timestamp int64  // ms since epoch, for 410
	gone      bool   // the client went away: answer nothing
}

func apnsError(status int, reason string) apnsResult {
	return apnsResult{status: status, reason: reason}
}

// apnsRequest is a request that passed validation.
type apnsRequest struct {
	token                                             string
	topic, pushType, priority, expiration, collapseID string
	body                                              []byte
}

func (s *Server) serveAPNs(w http.ResponseWriter, r *http.Request, f *faultState) {
	st := &s.stats.apns
	st.requests.Add(1)
	id := r.Header.Get(apnsIDHeader)
	if id != "" && !isUUID(id) {
		id = ""
	}
	if id == "" {
		id = newUUID()
	}
	req, res := s.checkAPNs(r, f)
	if res.status == 0 && !res.gone {
		if a, ok := s.scripts.lookup(ProviderAPNs, req.token); ok {
			if a.Header.Get(apnsIDHeader) == "" {
				w.Header()[apnsIDHeader] = []string{id}
			}
			s.writeScripted(w, st, a)
			return
		}
		res = s.sendAPNs(r.Context(), req, f)
	}
	if res.gone {
		// Reset the stream: a handler that returns without writing would
		// answer 200, a delivery that never happened.
		panic(http.ErrAbortHandler)
	}
	st.answer(res.status, res.reason, s.now)
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("apns request", "path", r.URL.Path, "status", res.status, "reason", res.reason, "detail", res.detail, "apns_id", id)
	}

	h := w.Header()
	h[apnsIDHeader] = []string{id}
	if res.status == http.StatusOK {
		w.WriteHeader(http.StatusOK)
		return
	}
	body := `{"reason":"` + res.reason + `"}`
	if res.timestamp != 0 {
		body = `{"reason":"` + res.reason + `","timestamp":` + strconv.FormatInt(res.timestamp, 10) + `}`
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(res.status)
	io.WriteString(w, body)
}

// checkAPNs validates everything but the device token's behaviour. A zero
// result means the request is good.
func (s *Server) checkAPNs(r *http.Request, f *faultState) (apnsRequest, apnsResult) {
	var req apnsRequest
	token, ok := strings.CutPrefix(r.URL.Path, apnsPathPrefix)
	if !ok {
		return req, apnsError(http.StatusNotFound, reasonBadPath)
	}
	if r.Method != http.MethodPost {
		return req, apnsError(http.StatusMethodNotAllowed, reasonMethodNotAllowed)
	}
	body, tooLarge, err := readBody(r, apnsMaxVoIPPayload)
	if err != nil {
		return req, apnsResult{gone: true}
	}
	for k, v := range r.Header {
		if len(v) > 1 && (k == "Authorization" || strings.HasPrefix(k, apnsHeaderPrefix)) {
			return req, apnsError(http.StatusBadRequest, reasonDuplicateHeaders)
		}
	}
	if res := s.checkProviderToken(r.Header.Get("Authorization"), f); res.status != 0 {
		return req, res
	}
	if id := r.Header.Get(apnsIDHeader); id != "" && !isUUID(id) {
		return req, apnsError(http.StatusBadRequest, reasonBadMessageID)
	}

	switch {
	case token == "":
		return req, apnsError(http.StatusBadRequest, reasonMissingDeviceToken)
	case len(token)%2 != 0 || !isHex(token):
		return req, apnsError(http.StatusBadRequest, reasonBadDeviceToken)
	}
	req.token = token

	req.topic = r.Header.Get("Apns-Topic")
	if req.topic == "" {
		return req, apnsError(http.StatusBadRequest, reasonMissingTopic)
	}
	req.pushType = r.Header.Get("Apns-Push-Type")
	suffix, ok := apnsTopicSuffix[req.pushType]
	if !ok {
		return req, apnsError(http.StatusBadRequest, reasonInvalidPushType)
	}
	if !topicPattern.MatchString(req.topic) {
		return req, apnsError(http.StatusBadRequest, reasonBadTopic)
	}
	if !slices.ContainsFunc(s.opts.BundleIDs, func(b string) bool { return req.topic == b+suffix }) {
		return req, apnsError(http.StatusBadRequest, reasonTopicDisallowed)
	}

	req.priority = r.Header.Get("Apns-Priority")
	if req.priority != "" && !validPriority(req.priority) {
		return req, apnsError(http.StatusBadRequest, reasonBadPriority)
	}
	// Apple, on the background push type: always use priority 5; priority
	// 10 is an error. An omitted apns-priority means 10. Priority 1 is no
	// error Apple names; the simulator refuses it too, stricter than APNs,
	// since the documentation allows only 5. BadPriority is Apple's reason
	// for an apns-priority it does not accept, so it is the one answered
	// here rather than InvalidPushType.
	if req.pushType == "background" && req.priority != "5" {
		res := apnsError(http.StatusBadRequest, reasonBadPriority)
		res.detail = "apns-push-type background needs apns-priority 5, got " + cmp.Or(req.priority, "none (10)")
		return req, res
	}
	if v, ok := r.Header["Apns-Expiration"]; ok {
		req.expiration = v[0]
		if !validExpiration(req.expiration, s.now()) {
			return req, apnsError(http.StatusBadRequest, reasonBadExpirationDate)
		}
	}
	if v, ok := r.Header["Apns-Collapse-Id"]; ok {
		req.collapseID = v[0]
		if !validCollapseID(req.collapseID) {
			return req, apnsError(http.StatusBadRequest, reasonBadCollapseID)
		}
	}

	limit := apnsMaxPayload
	if req.pushType == "voip" {
		limit = apnsMaxVoIPPayload
	}
	switch {
	case len(body) == 0 && !tooLarge:
		return req, apnsError(http.StatusBadRequest, reasonPayloadEmpty)
	case tooLarge || len(body) > limit:
		return req, apnsError(http.StatusRequestEntityTooLarge, reasonPayloadTooLarge)
	}
	if res := checkAPNsPayload(body, req.pushType); res.status != 0 {
		return req, res
	}
	req.body = body
	return req, apnsResult{}
}

// checkAPNsPayload applies the payload rules of aps.go to body, sent with
// pushType. Type and value errors come first (BadPayload), then a payload
// that does not match its push type (InvalidPushType).
func checkAPNsPayload(body []byte, pushType string) apnsResult {
	aps, ok := apsOf(body)
	if !ok {
		res := apnsError(http.StatusBadRequest, reasonBadPayload)
		res.detail = `the payload is not a JSON object with an "aps" dictionary`
		return res
	}
	f, problem := scanAPS(aps)
	if problem == "" {
		problem = f.valueProblem(f.alert != nil)
	}
	if problem != "" {
		res := apnsError(http.StatusBadRequest, reasonBadPayload)
		res.detail = problem
		return res
	}
	if problem := f.pushTypeProblem(pushType, f.alert != nil); problem != "" {
		res := apnsError(http.StatusBadRequest, reasonInvalidPushType)
		res.detail = problem
		return res
	}
	return apnsResult{}
}

// checkProviderToken applies the JWT rules to an authorization header.
func (s *Server) checkProviderToken(auth string, f *faultState) apnsResult {
	if auth == "" {
		return apnsError(http.StatusForbidden, reasonMissingProviderToken)
	}
	if f.InvalidProviderToken {
		return apnsError(http.StatusForbidden, reasonInvalidProviderToken)
	}
	if len(auth) <= len(bearerScheme) || !strings.EqualFold(auth[:len(bearerScheme)], bearerScheme) {
		return apnsError(http.StatusForbidden, reasonInvalidProviderToken)
	}
	now := s.now()
	pt := s.providerToken(auth[len(bearerScheme):], now)
	switch {
	case pt.invalid:
		return apnsError(http.StatusForbidden, reasonInvalidProviderToken)
	case pt.iat.After(now.Add(clockSkew)):
		return apnsError(http.StatusForbidden, reasonInvalidProviderToken)
	case now.Sub(pt.iat) > providerTokenMaxAge || pt.expired.Load():
		return apnsError(http.StatusForbidden, reasonExpiredProviderToken)
	case s.expireOnce.Load() && s.expireOnce.CompareAndSwap(true, false):
		return apnsError(http.StatusForbidden, reasonExpiredProviderToken)
	case pt.churn:
		return apnsError(http.StatusTooManyRequests, reasonTooManyProviderTokenUpdates)
	}
	return apnsResult{}
}

// sendAPNs applies the token's behaviour and the faults to a valid request.
func (s *Server) sendAPNs(ctx context.Context, req apnsRequest, f *faultState) apnsResult {
	out, ok := s.decide(ctx, ProviderAPNs, req.token, f)
	if !ok {
		return apnsResult{gone: true}
	}
	switch out {
	case outcomeDead:
		ts := s.now().Add(-s.opts.DeadSince).UnixMilli()
		return apnsResult{status: http.StatusGone, reason: reasonUnregistered, timestamp: ts}
	case outcomeInvalid:
		return apnsError(http.StatusBadRequest, reasonBadDeviceToken)
	case outcomeWrongApp:
		return apnsError(http.StatusBadRequest, reasonDeviceTokenNotForTopic)
	case outcomeThrottled:
		return apnsError(http.StatusTooManyRequests, reasonTooManyRequests)
	case outcomeUnavailable:
		return apnsError(http.StatusServiceUnavailable, reasonServiceUnavailable)
	}
	s.stats.apns.delivered.Add(1)
	if s.delivery == nil && s.pushes == nil {
		return apnsResult{status: http.StatusOK}
	}
	d := Delivery{
		Token:      req.token,
		Provider:   ProviderAPNs,
		Topic:      req.topic,
		PushType:   req.pushType,
		Priority:   req.priority,
		Expiration: req.expiration,
		CollapseID: req.collapseID,
		Payload:    req.body,
		At:         s.now(),
		Received:   arrival(ctx),
	}
	if s.pushes != nil {
		s.pushes.record(d.push(), req.body)
	}
	if s.delivery != nil {
		s.delivery.record(d)
	}
	return apnsResult{status: http.StatusOK}
}

// Bounds on apns-expiration beyond "an unsigned integer". Apple documents
// an absolute UNIX time in seconds, 0 meaning "once, don't store"; a date
// that has already passed is what a relative TTL ("3600") or a stale
// deadline turns into, and one past maxExpiration is what milliseconds
// turn into. Apple answers BadExpirationDate only for values it cannot
// read; the simulator is stricter so that these client bugs fail.
const maxExpiration = 1e11 // seconds: the year 5138

// validExpiration applies the rules for apns-expiration as of now.
func validExpiration(v string, now time.Time) bool {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return false
	}
	return n == 0 || n <= maxExpiration && int64(n) >= now.Add(-clockSkew).Unix()
}

// validCollapseID applies Apple's 64-byte limit. An empty identifier
// collapses nothing: the simulator treats a header sent empty, rather than
// left out, as the client bug it is.
func validCollapseID(v string) bool { return v != "" && len(v) <= apnsMaxCollapseID }

// validPriority reports whether v is a documented apns-priority.
func validPriority(v string) bool { return v == "10" || v == "5" || v == "1" }

// readBody reads at most limit bytes of the body; tooLarge says there were
// more (the rest is left unread).
func readBody(r *http.Request, limit int) (body []byte, tooLarge bool, err error) {
	if r.ContentLength > int64(limit) {
		return nil, true, nil
	}
	size := 512
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1 // +1 so that EOF needs no regrowth
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf))
		}
		n, err := r.Body.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, true, nil
		}
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isUUID accepts the 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i : i+1]) {
				return false
			}
		}
	}
	return true
}

// newUUID returns a random (version 4) lowercase UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(out)
}
