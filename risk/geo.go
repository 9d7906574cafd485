package risk

import "math"

// earthRadiusKM is the Earth's mean radius. The haversine formula
// treats the Earth as a sphere, which is off by at most 0.5%: far less
// than the uncertainty of an IP geolocation.
const earthRadiusKM = 6371.0

// haversineKM returns the great-circle distance between two points
// given in degrees.
func haversineKM(lat1, lon1, lat2, lon2 float64) float64 {
	φ1 := radians(lat1)
	φ2 := radians(lat2)
	dφ := φ2 - φ1
	dλ := radians(lon2 - lon1)

	a := sq(math.Sin(dφ/2)) +
		math.Cos(φ1)*math.Cos(φ2)*sq(math.Sin(dλ/2))

	// Rounding can push a just past 1 for antipodal points.
	return 2 * earthRadiusKM * math.Asin(math.Sqrt(min(a, 1)))
}

func radians(deg float64) float64 { return deg * math.Pi / 180 }

func sq(x float64) float64 { return x * x }
