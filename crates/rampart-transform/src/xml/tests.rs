use super::*;

fn json(xml: &str, opts: &XmlOptions) -> Result<String, Refusal> {
    to_node(xml.as_bytes(), opts).map(|n| serde_json::to_string(&n).unwrap())
}

fn xml(json: &str) -> Result<String, Refusal> {
    let node: Node = serde_json::from_str(json).unwrap();
    from_node(&node).map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn reads_elements_attributes_text_and_repeats_by_the_mapping() {
    let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<users count="2">
  <user id="7"><name>Ann &amp; Bo</name><tag>a</tag><tag>b</tag></user>
  <user id="8"><name><![CDATA[<Cy>]]></name><note/></user>
  <title lang="en">Hi &#x41;</title>
</users>"#;
    assert_eq!(
        json(doc, &XmlOptions::default()).unwrap(),
        r##"{"users":{"@count":"2","user":[{"@id":"7","name":"Ann & Bo","tag":["a","b"]},{"@id":"8","name":"<Cy>","note":""}],"title":{"@lang":"en","#text":"Hi A"}}}"##
    );
}

#[test]
fn strips_namespaces_and_forces_arrays_when_asked() {
    let doc = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:GetUserResponse xmlns:m="urn:u"><m:User>Ann</m:User></m:GetUserResponse></soap:Body></soap:Envelope>"#;
    let opts = XmlOptions {
        strip_namespaces: true,
        arrays: vec!["User".into()],
    };
    assert_eq!(
        json(doc, &opts).unwrap(),
        r#"{"Envelope":{"Body":{"GetUserResponse":{"User":["Ann"]}}}}"#
    );
    // Stripped prefixes that make two attributes one (found by fuzzing) are refused.
    let clash = r#"<e a:id="1" b:id="2" xmlns:a="u" xmlns:b="v"/>"#;
    assert_eq!(json(clash, &opts), Err("xml.duplicate_attribute"));
    assert!(json(clash, &XmlOptions::default()).is_ok());
    // Kept as written by default.
    assert!(json(doc, &XmlOptions::default()).unwrap().starts_with(
        r#"{"soap:Envelope":{"@xmlns:soap":"http://schemas.xmlsoap.org/soap/envelope/","soap:Body""#
    ));
}

#[test]
fn refuses_doctypes_entities_and_broken_documents() {
    let o = XmlOptions::default();
    // XXE: an external entity, and the billion laughs, are refused at the DOCTYPE.
    let xxe =
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
    assert_eq!(json(xxe, &o), Err("xml.doctype"));
    let laughs = r#"<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>"#;
    assert_eq!(json(laughs, &o), Err("xml.doctype"));
    assert_eq!(json("<r>&x;</r>", &o), Err("xml.bad_reference"));
    assert_eq!(json(r#"<r a="&x;"/>"#, &o), Err("xml.bad_reference"));
    assert_eq!(json("<r><a></r>", &o), Err("xml.malformed"));
    assert_eq!(json("<r/><s/>", &o), Err("xml.malformed"));
    assert_eq!(json("text", &o), Err("xml.malformed"));
    assert_eq!(json("", &o), Err("xml.malformed"));
    assert_eq!(
        json(r#"<?xml version="1.0" encoding="ISO-8859-1"?><r/>"#, &o),
        Err("xml.not_utf8")
    );
    let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
    assert_eq!(json(&deep, &o), Err("xml.too_deep"));
}

#[test]
fn writes_json_as_xml_escaping_text_and_attributes() {
    assert_eq!(
        xml(r##"{"order":{"@id":"1&2","item":[{"sku":"a<b","qty":2},{"sku":"c","qty":1.5}],"gift":true,"note":null,"#text":"x"}}"##).unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><order id="1&amp;2"><item><sku>a&lt;b</sku><qty>2</qty></item><item><sku>c</sku><qty>1.5</qty></item><gift>true</gift><note/>x</order>"#
    );
}

#[test]
fn refuses_json_that_has_no_xml_form() {
    assert_eq!(xml(r#"{"a":1,"b":2}"#), Err("xml.json_root"));
    assert_eq!(xml(r#"[1]"#), Err("xml.json_root"));
    assert_eq!(xml(r#"{"a b":1}"#), Err("xml.json_name"));
    assert_eq!(xml(r#"{"r":{"x><y":1}}"#), Err("xml.json_name"));
    assert_eq!(xml(r#"{"r":{"@a":{"b":1}}}"#), Err("xml.json_attribute"));
    assert_eq!(xml(r#"{"r":{"x":[[1]]}}"#), Err("xml.nested_array"));
    assert_eq!(
        xml(r#"{"r":{"@a":"1","@a":"2"}}"#),
        Err("xml.duplicate_attribute")
    );
}

#[test]
fn round_trips_the_mapping() {
    let doc =
        r#"<?xml version="1.0" encoding="UTF-8"?><a k="v"><b>1</b><b>2</b><c>t &amp; u</c></a>"#;
    let node = to_node(doc.as_bytes(), &XmlOptions::default()).unwrap();
    assert_eq!(String::from_utf8(from_node(&node).unwrap()).unwrap(), doc);
}
