package apns

import (
	"fmt"
	"io"

	"github.com/pushd/pushd/providers"
)

// WithValue returns p with one more top-level payload key holding the
// string value, without preparing the notification again: the device
// API's push id, which differs for every user of a run whose payload is
// otherwise the same. The key must not be in the payload (Plan reserves
// it), and value must need no JSON escaping (the caller's ids are
// base64url); the payload limit still holds.
func (c *Client) WithValue(p providers.Prepared, key, value string) (providers.Prepared, error) {
	base, ok := p.(*prepared)
	if !ok || base.client != c {
		return nil, fmt.Errorf("apns: a notification prepared by another client")
	}
	n := len(base.payload) + len(key) + len(value) + 6 // ,"key":"value"
	if n > MaxPayloadSize {
		return nil, fmt.Errorf("the notification is %d bytes with its push id, but Apple allows at most %d; shorten the title, body or custom data: %w",
			n, MaxPayloadSize, providers.ErrPayloadTooLarge)
	}
	b := make([]byte, 0, n)
	b = append(b, base.payload[:len(base.payload)-1]...) // without the closing }
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':', '"')
	b = append(b, value...)
	b = append(b, '"', '}')
	q := &prepared{client: c, payload: b, expiration: base.expiration, static: base.static, hs: base.hs}
	q.getBody = func() (io.ReadCloser, error) { return &payloadBody{b: q.payload}, nil }
	return q, nil
}
