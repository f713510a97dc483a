package astrid

import "time"

// parseHostTimestamp parses the form in which the host writes timestamps,
// "YYYY-MM-DDTHH:MM:SS[.F]Z" in UTC with 1 to 9 fraction digits, giving
// exactly what time.Time's UnmarshalJSON gives for it (a time in time.UTC).
// It reports false for anything else, including any date or time out of
// range, which then goes through UnmarshalJSON: it is a fast path only, as
// time.Parse costs about a microsecond a message in wasm.
//
// The time is built from its Unix seconds (unixDays) with time.Unix(…).UTC(),
// which gives the same time.Time as time.Date(…, time.UTC) (the same wall and
// ext words, location nil) without time.Date's normalisation and location
// lookup: those were a third of the parse's cost in wasm.
func parseHostTimestamp(b []byte) (time.Time, bool) {
	if len(b) < 20 || len(b) > 30 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	century, yy := digits2(b[0], b[1]), digits2(b[2], b[3])
	year := 100*century + yy
	month, day := digits2(b[5], b[6]), digits2(b[8], b[9])
	hour, minute, sec := digits2(b[11], b[12]), digits2(b[14], b[15]), digits2(b[17], b[18])
	// digits2 gives -1 for anything but two digits.
	if century < 0 || yy < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 {
			return time.Time{}, false
		}
		for _, c := range frac[1:] {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			nsec = nsec*10 + int(c-'0')
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	unix := unixDays(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// digits2 returns the value of the two decimal digits a and b, or -1 if either is not a digit.
func digits2(a, b byte) int {
	x, y := int(a)-'0', int(b)-'0'
	if uint(x) > 9 || uint(y) > 9 {
		return -1
	}
	return 10*x + y
}

// unixDays returns the number of days from 1970-01-01 to the valid date year-month-day of the
// proleptic Gregorian calendar (year 0 to 9999), by the days-from-civil formula: eras of 400
// years, years starting in March so that the leap day is the last.
func unixDays(year, month, day int) int64 {
	y := year
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400 // [0, 399]
	mp := month - 3
	if month <= 2 {
		mp = month + 9
	}
	doy := (153*mp+2)/5 + day - 1          // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy // [0, 146096]
	return int64(era)*146097 + int64(doe) - 719468
}

// daysIn returns the number of days of month m of year (proleptic Gregorian).
func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
