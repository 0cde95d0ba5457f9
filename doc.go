// Package pushd is pushd's domain: the words every layer shares (campaign,
// run, batch, delivery, outcome, status, notification) and the database
// schema. It imports nothing of pushd, so that the scheduler, the campaign
// runner, the store and the provider clients can all speak it without
// depending on one another, as River keeps its job types in rivertype and
// litestream its domain in its root package.
//
// The types here carry data and the rules that follow from the data alone
// (Status.Finished, RunCounts.Outcomes). Policy (what to do with a campaign,
// what to tell staff) lives in scheduler and campaign; SQL lives in store.
package pushd
