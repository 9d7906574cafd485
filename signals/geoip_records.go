package signals

import (
	"net/netip"

	"github.com/runtimeid/runtimeid"
)

// The records below decode only the fields the network signals need;
// the decoder skips everything else, which keeps a lookup cheap.

type names struct {
	EN string `maxminddb:"en"`
}

type country struct {
	ISOCode string `maxminddb:"iso_code"`
}

type locationRecord struct {
	City struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"city"`
	Country           country `maxminddb:"country"`
	RegisteredCountry country `maxminddb:"registered_country"`
	Location          struct {
		// Pointers tell a missing coordinate from 0.
		Latitude       *float64 `maxminddb:"latitude"`
		Longitude      *float64 `maxminddb:"longitude"`
		AccuracyRadius uint16   `maxminddb:"accuracy_radius"`
	} `maxminddb:"location"`
}

// asnRecord is the shape of an ASN record, and a subset of an ISP one.
type asnRecord struct {
	Number       uint   `maxminddb:"autonomous_system_number"`
	Organization string `maxminddb:"autonomous_system_organization"`
}

type ispRecord struct {
	ISP string `maxminddb:"isp"`
}

type anonymousRecord struct {
	Anonymous        bool `maxminddb:"is_anonymous"`
	VPN              bool `maxminddb:"is_anonymous_vpn"`
	Tor              bool `maxminddb:"is_tor_exit_node"`
	Hosting          bool `maxminddb:"is_hosting_provider"`
	PublicProxy      bool `maxminddb:"is_public_proxy"`
	ResidentialProxy bool `maxminddb:"is_residential_proxy"`
}

// lookupLocation fills the country, and from a City database the city
// and location. The country is where the address is used; when the
// database does not know it, the country the network is registered in
// stands in.
func (db *geoDB) lookupLocation(
	addr netip.Addr, n *runtimeid.NetworkSignals,
) error {
	if db == nil {
		return nil
	}
	var rec locationRecord
	if ok, err := db.decode(addr, &rec); !ok {
		return err
	}
	n.Country = rec.Country.ISOCode
	if n.Country == "" {
		n.Country = rec.RegisteredCountry.ISOCode
	}
	n.City = rec.City.Names.EN

	loc := &rec.Location
	if loc.Latitude != nil && loc.Longitude != nil {
		n.Latitude, n.Longitude = *loc.Latitude, *loc.Longitude
		n.AccuracyKM = float64(loc.AccuracyRadius)
		n.HasLocation = true
	}
	return nil
}

func (db *geoDB) lookupASN(
	addr netip.Addr, n *runtimeid.NetworkSignals,
) error {
	if db == nil {
		return nil
	}
	var rec asnRecord
	if ok, err := db.decode(addr, &rec); !ok {
		return err
	}
	n.ASN, n.ASOrg = rec.Number, rec.Organization
	return nil
}

func (db *geoDB) lookupISP(
	addr netip.Addr, n *runtimeid.NetworkSignals,
) error {
	if db == nil {
		return nil
	}
	var rec ispRecord
	if ok, err := db.decode(addr, &rec); !ok {
		return err
	}
	n.ISP = rec.ISP
	return nil
}

// lookupAnonymous fills the anonymizer flags. Anonymous is set when
// any flag is, whatever the database's own is_anonymous says.
func (db *geoDB) lookupAnonymous(
	addr netip.Addr, n *runtimeid.NetworkSignals,
) error {
	if db == nil {
		return nil
	}
	var rec anonymousRecord
	if ok, err := db.decode(addr, &rec); !ok {
		return err
	}
	n.VPN, n.Tor, n.Hosting = rec.VPN, rec.Tor, rec.Hosting
	n.PublicProxy = rec.PublicProxy
	n.ResidentialProxy = rec.ResidentialProxy
	n.Anonymous = rec.Anonymous || rec.VPN || rec.Tor ||
		rec.Hosting || rec.PublicProxy || rec.ResidentialProxy
	return nil
}
