//! The controls findings map to, with their titles as their publishers write them:
//! OWASP API Security Top 10 2023, NIST SP 800-53 rev. 5, PCI DSS v4.0.

/// OWASP API Security Top 10 2023.
pub const OWASP: &[(&str, &str)] = &[
    ("API1:2023", "Broken Object Level Authorization"),
    ("API2:2023", "Broken Authentication"),
    ("API3:2023", "Broken Object Property Level Authorization"),
    ("API4:2023", "Unrestricted Resource Consumption"),
    ("API5:2023", "Broken Function Level Authorization"),
    (
        "API6:2023",
        "Unrestricted Access to Sensitive Business Flows",
    ),
    ("API7:2023", "Server Side Request Forgery"),
    ("API8:2023", "Security Misconfiguration"),
    ("API9:2023", "Improper Inventory Management"),
    ("API10:2023", "Unsafe Consumption of APIs"),
];

/// NIST SP 800-53 rev. 5 controls used here.
pub const NIST: &[(&str, &str)] = &[
    ("AC-3", "Access Enforcement"),
    ("AC-6", "Least Privilege"),
    ("AC-7", "Unsuccessful Logon Attempts"),
    ("AC-17", "Remote Access"),
    ("AU-2", "Event Logging"),
    ("AU-3", "Content of Audit Records"),
    ("AU-5", "Response to Audit Logging Process Failures"),
    ("AU-9", "Protection of Audit Information"),
    ("AU-10", "Non-repudiation"),
    ("AU-12", "Audit Record Generation"),
    ("CM-2", "Baseline Configuration"),
    ("CM-3", "Configuration Change Control"),
    ("CM-6", "Configuration Settings"),
    ("CM-7", "Least Functionality"),
    ("CP-10", "System Recovery and Reconstitution"),
    (
        "IA-2",
        "Identification and Authentication (Organizational Users)",
    ),
    ("IA-3", "Device Identification and Authentication"),
    ("IA-5", "Authenticator Management"),
    ("SC-5", "Denial-of-Service Protection"),
    ("SC-7", "Boundary Protection"),
    ("SC-8", "Transmission Confidentiality and Integrity"),
    ("SC-13", "Cryptographic Protection"),
    ("SC-17", "Public Key Infrastructure Certificates"),
    ("SC-23", "Session Authenticity"),
    ("SI-4", "System Monitoring"),
    ("SI-10", "Information Input Validation"),
    ("SI-15", "Information Output Filtering"),
    ("SI-19", "De-identification"),
];

/// PCI DSS v4.0 requirements used here.
pub const PCI: &[(&str, &str)] = &[
    ("1.4.1", "NSCs are implemented between trusted and untrusted networks"),
    ("2.2.4", "Only necessary services, protocols, daemons, and functions are enabled"),
    ("3.4.1", "PAN is masked when displayed"),
    ("4.2.1", "Strong cryptography protects PAN during transmission over open, public networks; certificates are valid and not expired"),
    ("6.4.2", "An automated technical solution detects and prevents web-based attacks for public-facing web applications"),
    ("7.2.1", "An access control model is defined and includes granting access"),
    ("8.2.1", "All users are assigned a unique ID"),
    ("8.3.1", "All user access is authenticated"),
    ("8.3.4", "Invalid authentication attempts are limited"),
    ("8.6.3", "Passwords/passphrases for application and system accounts are protected against misuse and changed periodically"),
    ("10.2.1", "Audit logs are enabled and active for all system components"),
    ("10.3.2", "Audit log files are protected to prevent modifications by individuals"),
    ("10.3.4", "File integrity monitoring or change-detection mechanisms is used on audit logs"),
    ("10.7.2", "Failures of critical security control systems are detected, alerted, and addressed promptly"),
];

/// The title of a control id in any of the three catalogues.
pub fn title(id: &str) -> Option<&'static str> {
    OWASP
        .iter()
        .chain(NIST)
        .chain(PCI)
        .find(|(i, _)| *i == id)
        .map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_mapped_id_is_in_the_catalogue() {
        for check in crate::checks::CHECKS {
            for id in check.owasp.iter().chain(check.nist).chain(check.pci) {
                assert!(super::title(id).is_some(), "{}: {id}", check.id);
            }
        }
    }
}
