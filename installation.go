package pushd

import "time"

// Installation is one install of an app on a device, as the device API
// registers it: a users row keyed by (App, InstallationID).
type Installation struct {
	App            string
	InstallationID string
	Token          string
	// ExternalID is the company's own id of the person; empty for none.
	ExternalID string
	// Timezone (IANA) and Locale (BCP 47, canonical) are empty when the app
	// did not say.
	Timezone, Locale string
	// Attributes is a JSON object, or nil.
	Attributes []byte
	// At is when the app registered it: users.registered_at.
	At time.Time
}

// Registered is what registering an installation made of it.
type Registered struct {
	ID      int64 // users.id
	Created bool  // a new row, not a refresh
}

// PushOpen is an open an app reported: its installation, and the push's
// run and user from the push id.
type PushOpen struct {
	App, InstallationID string
	RunID, UserID       int64
}

// Opened is what recording an open did.
type Opened int

// The outcomes of an open.
const (
	// Counted: the first open of this push.
	Counted Opened = iota
	// Repeated: counted before; nothing changed.
	Repeated
	// NoPush: the run sent no push to this installation.
	NoPush
	// NotYet: a push of a run still sending, with no outcome recorded yet
	// (it was just sent): ask again shortly.
	NotYet
)
