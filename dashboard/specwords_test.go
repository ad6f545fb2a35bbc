package dashboard

import "testing"

func TestSpecInWords(t *testing.T) {
	for _, tc := range []struct {
		spec, zone, want string
	}{
		// Descriptors.
		{"@daily", "", "every day at 00:00"},
		{"@midnight", "", "every day at 00:00"},
		{"@hourly", "", "at minute 0 past every hour"},
		{"@weekly", "", "every Sunday at 00:00"},
		{"@monthly", "", "on the 1st of every month at 00:00"},
		{"@yearly", "", "every year on 1 January at 00:00"},
		{"@annually", "UTC", "every year on 1 January at 00:00 UTC"},
		{"@every 1h", "", "every hour"},
		{"@every 15m", "Europe/Paris", "every 15 minutes"},
		{"@every 90m", "", "every 1 hour and 30 minutes"},
		{"@every 45s", "", "every 45 seconds"},
		{"@every 1s", "", "every second"},
		{"@every 24h", "", "every 24 hours"},
		{"@every 1h0m5s", "", "every 1 hour and 5 seconds"},

		// Times of day.
		{"0 9 * * *", "Europe/Paris", "every day at 09:00 Europe/Paris"},
		{"CRON_TZ=Europe/Paris 0 9 * * *", "", "every day at 09:00 Europe/Paris"},
		{"TZ=America/New_York 30 17 * * *", "", "every day at 17:30 America/New_York"},
		{"0 9,17 * * *", "", "every day at 09:00 and 17:00"},
		{"0,30 9 * * *", "", "every day at 09:00 and 09:30"},
		{"0 1,5,9,13,20 * * *", "", "every day at 01:00, 05:00, 09:00, 13:00 and 20:00"},
		{"0 30 9 * * *", "", "every day at 09:30"},
		{"15 30 9 * * *", "", "every day at 09:30:15"},
		{"0 6 1 * *", "Europe/Paris", "on the 1st of every month at 06:00 Europe/Paris"},

		// Intervals.
		{"* * * * *", "", "every minute"},
		{"*/15 * * * *", "", "every 15 minutes"},
		{"0/15 * * * *", "", "every 15 minutes"},
		{"0,15,30,45 * * * *", "", "every 15 minutes"},
		{"*/15 * * * *", "Europe/Paris", "every 15 minutes"},
		{"*/7 * * * *", "", "every 7th minute"},
		{"*/15 9-17 * * *", "", "every 15 minutes from 09:00 to 17:59"},
		{"* 9 * * *", "", "every minute from 09:00 to 09:59"},
		{"0 */2 * * *", "", "at minute 0 past every 2nd hour"},
		{"0 */2 * * *", "Asia/Kolkata", "at minute 0 past every 2nd hour (Asia/Kolkata)"},
		{"0 */3 * * *", "", "at minute 0 past every 3rd hour"},
		{"5 * * * *", "", "at minute 5 past every hour"},
		{"15,45 * * * *", "", "at minutes 15 and 45 past every hour"},
		{"0 9-17 * * *", "", "at minute 0 past every hour from 9 through 17"},
		{"* * * * * *", "", "every second"},
		{"*/10 * * * * *", "", "every 10 seconds"},

		// Days.
		{"30 8 * * 1", "", "every Monday at 08:30"},
		{"30 8 * * MON", "", "every Monday at 08:30"},
		{"30 8 ? * mon", "", "every Monday at 08:30"},
		{"0 9 * * 1-5", "", "every Monday to Friday at 09:00"},
		{"0 9 * * MON-FRI", "Europe/Paris", "every Monday to Friday at 09:00 Europe/Paris"},
		{"0 10 * * 0,6", "", "every Saturday and Sunday at 10:00"},
		{"0 10 * * 1,3,5", "", "every Monday, Wednesday and Friday at 10:00"},
		{"*/5 * * * 1-5", "", "every 5 minutes on Monday to Friday"},
		{"*/5 * * * 1-5", "Europe/Paris", "every 5 minutes on Monday to Friday (Europe/Paris)"},
		{"*/15 9-17 * * 1-5", "", "every 15 minutes from 09:00 to 17:59 on Monday to Friday"},
		{"0 0 1,15 * *", "", "on the 1st and 15th of every month at 00:00"},
		{"0 0 1-7 * *", "", "on the 1st to 7th of every month at 00:00"},
		{"0 0 22 * *", "", "on the 22nd of every month at 00:00"},
		{"0 0 1 1 *", "", "every year on 1 January at 00:00"},
		{"0 0 1 1,7 *", "", "on the 1st of January and July at 00:00"},
		{"0 0 * 3-6 *", "", "every day in March to June at 00:00"},
		{"0 0 12 * JAN,JUL *", "", "every day in January and July at 12:00"},
		{"0 * * * 1", "", "at minute 0 past every hour on Monday"},
		{"0 0 * * 0-6", "", "every day at 00:00"},
		{"0 0 1-31 * *", "", "every day at 00:00"},

		// Too much for one phrase, or not a spec: the spec itself.
		{"0 0 1 * 1", "", "0 0 1 * 1"}, // the 1st or a Monday
		{"0 1,3,5,7,9,11,13 * * *", "", "0 1,3,5,7,9,11,13 * * *"},
		{"30 * * * * *", "", "30 * * * * *"}, // at second 30 of every minute
		{"0 0 */2 * *", "", "0 0 */2 * *"},   // every other day of the month
		{"0 0 * * 1,2,3,5,6", "", "every Monday, Tuesday, Wednesday, Friday and Saturday at 00:00"},
		{"0 0 * * 0,1,2,4,5,6", "", "0 0 * * 0,1,2,4,5,6"},
		{"*/15 9 * * *", "", "every day at 09:00, 09:15, 09:30 and 09:45"},
		{"nonsense", "", "nonsense"},
		{"0 0 L * *", "", "0 0 L * *"},
		{"", "", ""},
		{"CRON_TZ=Nowhere/Land 0 9 * * *", "", "CRON_TZ=Nowhere/Land 0 9 * * *"},
	} {
		if got := specInWords(tc.spec, tc.zone); got != tc.want {
			t.Errorf("specInWords(%q, %q) = %q, want %q", tc.spec, tc.zone, got, tc.want)
		}
	}
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th",
		21: "21st", 22: "22nd", 23: "23rd", 31: "31st", 101: "101st", 111: "111th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}
