//! The Velocity language: references, directives, expressions, escapes, whitespace.

mod common;

use common::{eval, render};
use tollgate_vtl::{Input, Options, Template, Vars};

#[test]
fn references_in_all_their_forms() {
    let template = "#set($a = {\"b\": {\"c\": [10, 20]}, \"k-1\": \"dash\"})\
        $a.b.c[1] ${a.b.c[0]} $a[\"b\"].c.size() $!{a.b.c.get(1)} $a.k-1";
    assert_eq!(eval(template), "20 10 2 20 dash");
}

#[test]
fn a_null_reference_renders_as_nothing_or_strictly_as_its_source() {
    assert_eq!(
        eval("[$foo][$!foo][${foo.bar}][$input.path('$.x')]"),
        "[][][][]"
    );
    let strict = Options {
        strict_null_references: true,
        ..Options::default()
    };
    let rendered = Template::parse("[$foo][$!foo][${foo.bar}]")
        .unwrap()
        .render_with(&Input::new(""), &Vars::default(), &strict)
        .unwrap();
    assert_eq!(rendered.body, "[$foo][][${foo.bar}]");
}

#[test]
fn dollar_and_hash_that_start_nothing_are_text() {
    assert_eq!(
        eval(r##"{"price": "$5", "color": "#fff", "a": "$ #", "b": "$.x", "c": "#1"}"##),
        r##"{"price": "$5", "color": "#fff", "a": "$ #", "b": "$.x", "c": "#1"}"##
    );
}

#[test]
fn escapes_make_references_and_directives_literal() {
    assert_eq!(
        eval(r#"#set($x = 1)\$x \\$x \#if \${x} \a"#),
        r#"$x \1 #if ${x} \a"#
    );
}

#[test]
fn comments_render_nothing() {
    assert_eq!(eval("a## line comment\nb#* block\ncomment *#c"), "abc");
    assert_eq!(eval("#[[$not #parsed]]#"), "$not #parsed");
}

#[test]
fn set_if_elseif_else() {
    let template =
        "#foreach($n in [1, 2, 3])#if($n == 1)one#elseif($n == 2)two#{else}many#end,#end";
    assert_eq!(eval(template), "one,two,many,");
    assert_eq!(eval("#{if}(true)yes#{end}"), "yes");
}

#[test]
fn directive_lines_leave_no_blank_lines() {
    let template = "{\n  #set($x = 1)\n  #if($x == 1)\n  \"x\": $x\n  #end\n}";
    // Indentation before #if and #end stays; the line ends after directives go.
    assert_eq!(eval(template), "{\n    \"x\": 1\n  }");
}

#[test]
fn foreach_loop_variables() {
    let template = "#foreach($x in ['a', 'b', 'c'])$x:$foreach.index/$foreach.count/$velocityCount/$foreach.hasNext/$velocityHasNext/$foreach.first/$foreach.last #end";
    assert_eq!(
        eval(template),
        "a:0/1/1/true/true/true/false b:1/2/2/true/true/false/false c:2/3/3/false/false/false/true "
    );
}

#[test]
fn foreach_over_a_map_iterates_its_values_and_restores_the_variable() {
    assert_eq!(
        eval("#set($x = 'kept')#foreach($x in {'a': 1, 'b': 2})$x#end $x"),
        "12 kept"
    );
    assert_eq!(eval("#foreach($x in $nothing)never#end done"), " done");
}

#[test]
fn break_leaves_the_loop_and_stop_the_template() {
    assert_eq!(
        eval("#foreach($i in [1..5])#if($i == 3)#break#end$i#end!"),
        "12!"
    );
    assert_eq!(
        eval("a#foreach($i in [1..5])$i#if($i == 2)#stop#end#end never"),
        "a12"
    );
}

#[test]
fn ranges_count_up_and_down() {
    assert_eq!(eval("#foreach($i in [3..1])$i#end"), "321");
    assert_eq!(eval("#set($n = 2)#foreach($i in [0..$n])$i#end"), "012");
}

#[test]
fn set_keeps_the_old_value_when_the_new_one_is_null() {
    assert_eq!(eval("#set($a = 'old')#set($a = $missing)$a"), "old");
}

#[test]
fn set_into_maps_and_lists() {
    assert_eq!(
        eval("#set($m = {})#set($m.a = 1)#set($m['b'] = 2)#set($l = [0, 0])#set($l[1] = 5)$m $l"),
        "{a=1, b=2} [0, 5]"
    );
}

#[test]
fn arithmetic_and_concatenation() {
    let template = "#set($a = 7)
#set($b = $a + 1)
#set($c = $a * 2)
#set($d = $a / 2)
#set($e = $a % 4)
#set($f = 7.5 - 0.5)
#set($g = 'n' + $a)
#set($h = $a / 0)
#set($i = -$a)
#set($j = 9223372036854775807 + 1)
$b $c $d $e $f $g [$h] $i $j";
    assert_eq!(eval(template), "8 14 3 3 7.0 n7 [] -7 9.223372036854776E18");
}

#[test]
fn set_takes_the_blanks_before_it_as_velocity_17_does() {
    assert_eq!(eval("a  #set($x = 1)b"), "ab");
}

#[test]
fn comparisons_and_logic_with_symbols_and_words() {
    let cases = [
        ("1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3", true),
        ("1 lt 2 and 2 le 2 and 3 gt 2 and 3 ge 3", true),
        ("1 == 1.0 && '5' == 5 && 'a' != 'b'", true),
        ("1 eq 2 or not true", false),
        ("!false && !$missing", true),
        ("$missing == $null", true),
        ("'' && []", true),
        ("'abc' < 'abd'", true),
        ("(1 + 2) * 3 == 9 && 1 + 2 * 3 == 7", true),
    ];
    for (condition, expected) in cases {
        let template = format!("#if({condition})yes#{{else}}no#end");
        assert_eq!(
            eval(&template),
            if expected { "yes" } else { "no" },
            "{condition}"
        );
    }
}

#[test]
fn string_literals() {
    assert_eq!(
        eval(
            r#"#set($n = 'x')#set($a = "n=$n")#set($b = 'n=$n')#set($c = "say ""hi""")#set($d = 'it''s')$a $b $c $d"#
        ),
        r#"n=x n=$n say "hi" it's"#
    );
}

#[test]
fn lists_and_maps_print_as_java_collections() {
    assert_eq!(
        eval("#set($l = [1, 'two', 3.5, true, [4]])#set($m = {'a': 1, 'b': [2]})$l $m"),
        "[1, two, 3.5, true, [4]] {a=1, b=[2]}"
    );
}

#[test]
fn string_methods() {
    let template = r#"#set($s = "  Hello, World  ")#set($t = $s.trim())$t.length() $t.toLowerCase() $t.toUpperCase() $t.contains("World") $t.startsWith("He") $t.endsWith("d") $t.indexOf("o") $t.substring(7) $t.substring(0, 5) $t.replace("l", "L") $t.replaceAll("[aeiou]", "*") $t.split(", ") $t.isEmpty() $t.equals("Hello, World") $t.matches("H.*d") $t.matches("ello") $t.replaceAll("(\w+), (\w+)", "$2 $1")"#;
    assert_eq!(
        eval(template),
        "12 hello, world HELLO, WORLD true true true 4 World Hello HeLLo, WorLd H*ll*, W*rld [Hello, World] false true true false World Hello"
    );
}

#[test]
fn list_methods() {
    let template = "#set($l = ['a', 'b'])#set($ok = $l.add('c'))$l.size() $l.get(0) $l.isEmpty() $l.contains('b') $l.contains('z') $l.indexOf('c') $ok $l";
    assert_eq!(eval(template), "3 a false true false 2 true [a, b, c]");
}

#[test]
fn map_methods() {
    let template = "#set($m = {'a': 1})#set($prev = $m.put('b', 2))#set($prev = $m.put('a', 3))$prev $m.get('a') $m.size() $m.containsKey('b') $m.containsKey('z') $m.keySet() $m.values() $m.isEmpty()#foreach($e in $m.entrySet()) $e.key=$e.value/$e.getKey()#end $m.entrySet()";
    assert_eq!(
        eval(template),
        "1 3 2 true false [a, b] [3, 2] false a=3/a b=2/b [a=3, b=2]"
    );
}

#[test]
fn shared_lists_change_for_every_holder() {
    assert_eq!(
        eval("#set($a = [])#set($b = $a)#set($x = $b.add(1))$a"),
        "[1]"
    );
}

#[test]
fn a_list_added_to_itself_does_not_hang_or_leak_the_render() {
    let output = eval("#set($a = [1])#set($x = $a.add($a))$a.size()");
    assert_eq!(output, "2");
}

#[test]
fn quiet_and_interpolated_references_inside_strings() {
    let input = Input::new(r#"{"user": {"name": "Ann"}}"#);
    assert_eq!(
        render(
            r#"#set($greeting = "Hi $input.path('$.user.name')!$!nothing")$greeting"#,
            &input
        ),
        "Hi Ann!"
    );
}
