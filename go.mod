module github.com/jobrun/jobrun

go 1.26.0

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/robfig/cron/v3 v3.0.1
	go.etcd.io/bbolt v1.5.0
	go.uber.org/goleak v1.3.0
	golang.org/x/term v0.48.0
	golang.org/x/time v0.16.0
)

require golang.org/x/sys v0.50.0 // indirect
