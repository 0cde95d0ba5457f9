package content

import (
	"testing"

	"github.com/pushd/pushd"
)

// BenchmarkRender is the bench's templated campaign (cmd/pushbench
// -content template) for one user.
func BenchmarkRender(b *testing.B) {
	c, err := Compile(pushd.Notification{Title: `Hi {{ first_name | default: "there" }}`,
		Body:         `{% if plan == "gold" %}Gold members: everything 50% off{% else %}Everything 30% off{% endif %}`,
		Translations: []pushd.Translation{{Locale: "fr", Title: `Bonjour {{ first_name | default: "à vous" }}`, Body: "b"}}})
	if err != nil {
		b.Fatal(err)
	}
	u := User{ID: 42, Locale: "fr-FR", Attributes: []byte(`{"first_name": "User42", "plan": "gold"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Render(u); err != nil {
			b.Fatal(err)
		}
	}
}
