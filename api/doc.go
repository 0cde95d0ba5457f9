// Package api is the device API that the mobile apps call: they register
// their installation's push token (PUT, DELETE
// /v1/apps/{app}/installations/{installation_id}) and report the pushes
// their users opened. It authenticates each app by its api_keys, limits
// each key's rate, checks every field before anything reaches the
// database, and answers every problem with a status code and a JSON body
// naming the field (docs/api.md).
package api
