package pushd

import (
	"encoding/binary"
	"hash/fnv"
)

// Assign gives a user of a campaign their variant, or holds them out: a
// stable hash of (campaign, user), so every run, instance and restart
// gives the same answer. holdoutPercent of the users (in hash order) are
// held out; the others get a variant in proportion to the weights. name is
// "" when there are no variants.
func Assign(campaignID, userID int64, holdoutPercent int, variants []Variant) (name string, heldOut bool) {
	if holdoutPercent > 0 && unit(campaignID, userID, 1)*100 < float64(holdoutPercent) {
		return "", true
	}
	total := 0
	for _, v := range variants {
		total += max(v.Weight, 0)
	}
	if total == 0 {
		return "", false
	}
	// A second, independent hash: the variant does not depend on how near
	// the user came to the holdout.
	x := unit(campaignID, userID, 2) * float64(total)
	for _, v := range variants {
		if x < float64(max(v.Weight, 0)) {
			return v.Name, false
		}
		x -= float64(max(v.Weight, 0))
	}
	return variants[len(variants)-1].Name, false
}

// unit maps (campaign, user, salt) to [0, 1) uniformly.
func unit(campaignID, userID int64, salt byte) float64 {
	var b [17]byte
	binary.BigEndian.PutUint64(b[:], uint64(campaignID))
	binary.BigEndian.PutUint64(b[8:], uint64(userID))
	b[16] = salt
	h := fnv.New64a()
	h.Write(b[:])
	x := h.Sum64()
	// splitmix64's finaliser: FNV's low bits of near-consecutive ids are
	// correlated; this spreads them.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// WithVariant returns n with v's texts (and its image and link, when set)
// in place of the campaign's, and no variants.
func WithVariant(n Notification, v Variant) Notification {
	n.Title, n.Body, n.Subtitle = v.Title, v.Body, v.Subtitle
	if v.ImageURL != "" {
		n.ImageURL = v.ImageURL
	}
	if v.Link != "" {
		n.Link = v.Link
	}
	n.Variants, n.HoldoutPercent = nil, 0
	return n
}
