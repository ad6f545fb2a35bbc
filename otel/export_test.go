package oteljobrun

// Buckets are the histograms' bucket bounds, for the test that keeps them
// jobrun/metrics'.
var Buckets = buckets
