//! MUST's error codes (github.com/MUST-Foundation/api-error-codes) as data:
//! the bank gets a code, a category and the customer-facing Russian text.

use serde::Serialize;

/// The groups of MUST's table (10xx phone, 11xx e-mail/plates, 12xx/14xx vehicle
/// and data, 15xx Ingosstrakh, 16xx Renaissance, 19xx system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCategory {
    Phone,
    Email,
    PlatesAndVin,
    VehicleCategory,
    System,
    PolicyIssuing,
    PolicyData,
    DataCollection,
    Drivers,
    Ingosstrakh,
    Renaissance,
    /// A code that is not in the published table.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MustErrorCode {
    pub code: u32,
    pub category: ErrorCategory,
    pub description: &'static str,
    pub detail_ru: &'static str,
    pub customer_text_ru: &'static str,
}

/// The text a customer sees for a code we do not know.
const UNKNOWN_CUSTOMER_TEXT: &str = "Произошла непредвиденная ошибка. Уже работаем над ее устранением.";

impl MustErrorCode {
    /// The table's entry for `code`, or an `Unknown` entry with the generic customer text.
    pub fn lookup(code: u32) -> MustErrorCode {
        TABLE.iter().copied().find(|e| e.code == code).unwrap_or(MustErrorCode {
            code,
            category: ErrorCategory::Unknown,
            description: "unknown error code",
            detail_ru: "",
            customer_text_ru: UNKNOWN_CUSTOMER_TEXT,
        })
    }
}

#[rustfmt::skip]
pub const TABLE: &[MustErrorCode] = &[
    MustErrorCode { code: 1001, category: ErrorCategory::Phone, description: "empty phone", detail_ru: "Введите номер телефона", customer_text_ru: "Введите номер телефона" },
    MustErrorCode { code: 1002, category: ErrorCategory::Phone, description: "phone invalid", detail_ru: "В номере телефона ошибка", customer_text_ru: "Введите корректный номер телефона" },
    MustErrorCode { code: 1003, category: ErrorCategory::Phone, description: "fraud", detail_ru: "Повторите попытку через 20 минут (бан номера телефона)", customer_text_ru: "Повторите попытку через 20 минут" },
    MustErrorCode { code: 1004, category: ErrorCategory::Phone, description: "wait", detail_ru: "Получить новый код можно через 30 сек", customer_text_ru: "Получить новый код можно через 30 сек" },
    MustErrorCode { code: 1005, category: ErrorCategory::Phone, description: "invalid otp", detail_ru: "Введите правильный код из СМС", customer_text_ru: "Введите правильный код из СМС" },
    MustErrorCode { code: 1006, category: ErrorCategory::Phone, description: "migrated to another phone", detail_ru: "Номер телефона был изменен", customer_text_ru: "Номер телефона был изменен" },
    MustErrorCode { code: 1101, category: ErrorCategory::Email, description: "email invalid", detail_ru: "В адресе e-mail ошибка", customer_text_ru: "Введите правильный e-mail" },
    MustErrorCode { code: 1102, category: ErrorCategory::PlatesAndVin, description: "plates invalid", detail_ru: "Некорректный гос.номер", customer_text_ru: "Введите корректный гос.номер" },
    MustErrorCode { code: 1103, category: ErrorCategory::PlatesAndVin, description: "plates region invalid", detail_ru: "Некорректный регион", customer_text_ru: "Введите корректный регион" },
    MustErrorCode { code: 1203, category: ErrorCategory::PlatesAndVin, description: "vin not determined", detail_ru: "Не удалось определить VIN", customer_text_ru: "Нам не удалось определить VIN. Сервис работает только для ТС у которых есть VIN-номер." },
    MustErrorCode { code: 1406, category: ErrorCategory::PlatesAndVin, description: "incorrect vin", detail_ru: "Некорректный VIN", customer_text_ru: "Введите корректный VIN" },
    MustErrorCode { code: 1419, category: ErrorCategory::PlatesAndVin, description: "incorrect vin", detail_ru: "Введеный VIN не соответствует данным по ГРЗ", customer_text_ru: "Введите VIN-номер" },
    MustErrorCode { code: 1201, category: ErrorCategory::VehicleCategory, description: "invalid vehicle industry", detail_ru: "Некорректная категория ТС", customer_text_ru: "Сервис работает только для Грузовой техники." },
    MustErrorCode { code: 1204, category: ErrorCategory::VehicleCategory, description: "individual vehicle", detail_ru: "Это легковой автомобиль", customer_text_ru: "Сервис работает только для Грузовой техники." },
    MustErrorCode { code: 1208, category: ErrorCategory::VehicleCategory, description: "empty vehicle industry", detail_ru: "Не удалось определить категорию ТС", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1415, category: ErrorCategory::VehicleCategory, description: "invalid vehicle body type group", detail_ru: "Категория ТС не соответствует ни одному из правил: Тип ТС Седельный тягач Тип ТС Грузовик Тип ТС Легкий коммерчески транспорт \"С\" с массой > 3500 Тип ТС Легкий коммерчески транспорт \"B\" с массой <= 3500 Тип ТС Микроавтобус \"С\" с массой > 3500 Тип ТС Микроавтобус \"B\" с массой <= 3500", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1202, category: ErrorCategory::System, description: "loss classifier error", detail_ru: "Системная ошибка LossClassifier", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1301, category: ErrorCategory::System, description: "invalid prediction", detail_ru: "Системная ошибка Prediction", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1401, category: ErrorCategory::System, description: "invalid preScoring state", detail_ru: "Системная ошибка PreScoring", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1901, category: ErrorCategory::System, description: "unhandled sales process error", detail_ru: "Системная ошибка SalesProcess", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1200, category: ErrorCategory::PolicyIssuing, description: "emty vehicle owner", detail_ru: "Отсутвуют данные о Собственнике", customer_text_ru: "Отсутвуют данные о Собственнике" },
    MustErrorCode { code: 1205, category: ErrorCategory::PolicyIssuing, description: "legalEntity disabled", detail_ru: "Сейчас оформление для Юридических лиц недоступно", customer_text_ru: "Оформление для Юридических лиц временно недоступно." },
    MustErrorCode { code: 1206, category: ErrorCategory::PolicyIssuing, description: "individual disabled", detail_ru: "Сейчас оформление для Физических лиц недоступно", customer_text_ru: "Оформление для Физических лиц временно недоступно." },
    MustErrorCode { code: 1207, category: ErrorCategory::PolicyIssuing, description: "privateEntrepreneur disabled", detail_ru: "Сейчас оформление для ИП недоступно", customer_text_ru: "Оформление для ИП временно недоступно." },
    MustErrorCode { code: 1421, category: ErrorCategory::PolicyIssuing, description: "technical inspection expired", detail_ru: "Диагностическая карта просрочена, введите номер действующей ДК", customer_text_ru: "Введите действующую Диагностическую Карту." },
    MustErrorCode { code: 1430, category: ErrorCategory::PolicyIssuing, description: "no price for vehicle", detail_ru: "Непроходная цена, дефицит тарифа", customer_text_ru: "Для вашего авто на данный момент пока нет предложений." },
    MustErrorCode { code: 1402, category: ErrorCategory::PolicyData, description: "should be with trailer", detail_ru: "Используется только с прицепом", customer_text_ru: "Ваш грузовик используется только с прицепом." },
    MustErrorCode { code: 1403, category: ErrorCategory::PolicyData, description: "invalid policy start on", detail_ru: "Не корректная дата начала действия полиса", customer_text_ru: "Введите корректную дату начала действия полиса" },
    MustErrorCode { code: 1404, category: ErrorCategory::PolicyData, description: "empty owner registration city id", detail_ru: "Не введен населенный пункт", customer_text_ru: "Введите населенный пункт регистрации Собственника ТС" },
    MustErrorCode { code: 1405, category: ErrorCategory::PolicyData, description: "malformed owner registration city", detail_ru: "Населенный пункт не существуе", customer_text_ru: "Введите корректный населенный пункт регистрации Собственника ТС" },
    MustErrorCode { code: 1416, category: ErrorCategory::PolicyData, description: "invalid hasTrailer flag", detail_ru: "Используется только с прицепом", customer_text_ru: "Ваш грузовик используется только с прицепом." },
    MustErrorCode { code: 1417, category: ErrorCategory::PolicyData, description: "invalid weightGross", detail_ru: "Категория ТС отличается от \"С\"", customer_text_ru: "Наш сервис работает только для Грузовиков." },
    MustErrorCode { code: 1407, category: ErrorCategory::DataCollection, description: "cannot get city fias id", detail_ru: "Не возможно определить населенный пункт", customer_text_ru: "Введите населенный пункт регистрации Собственника ТС" },
    MustErrorCode { code: 1408, category: ErrorCategory::DataCollection, description: "cannot get base tariff", detail_ru: "Не возможно определить Базовый Тариф", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1409, category: ErrorCategory::DataCollection, description: "cannot get ageExperienceRate", detail_ru: "Не возможно определить КВС", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1410, category: ErrorCategory::DataCollection, description: "cannot get bonusMalusRate", detail_ru: "Не возможно определить КБМ", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1411, category: ErrorCategory::DataCollection, description: "empty weightGross", detail_ru: "Отсутствует разрешенная масса ТС", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1412, category: ErrorCategory::DataCollection, description: "insufficient data to calculate price", detail_ru: "Не возможно рассчитать стоимость полиса", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1413, category: ErrorCategory::DataCollection, description: "cannot get cb territory rate", detail_ru: "Не возможно рассчитать КТ", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1420, category: ErrorCategory::DataCollection, description: "no data", detail_ru: "Недостаточно данных для обработки запроса", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1414, category: ErrorCategory::Drivers, description: "invalid vehicle license category", detail_ru: "Категория ТС известна и не соответствует ни \"С\" ни \"В\"", customer_text_ru: "Наш сервис работает только для Грузовиков." },
    MustErrorCode { code: 1422, category: ErrorCategory::Drivers, description: "empty vehicle license category", detail_ru: "Не определена категория ТС", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1423, category: ErrorCategory::Drivers, description: "empty engine power", detail_ru: "Не определена мощность двигателя ТС", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1418, category: ErrorCategory::Drivers, description: "invalid driver license categories", detail_ru: "Один из водителей на имеет необходимой категории", customer_text_ru: "Один из водителей на имеет необходимой категории, его нужно исключить или заменить." },
    MustErrorCode { code: 1501, category: ErrorCategory::Ingosstrakh, description: "ingos create agreement error", detail_ru: "Ингосстрах ошибка создания договора", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1502, category: ErrorCategory::Ingosstrakh, description: "ingos create payment link error", detail_ru: "Ингосстрах ошибка создания ссылки на оплату", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1503, category: ErrorCategory::Ingosstrakh, description: "ingos check is paid error", detail_ru: "Ингосстрах ошибка проверка статуса оплаты", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1504, category: ErrorCategory::Ingosstrakh, description: "ingos download policy error", detail_ru: "Ингосстрах ошибка загрузки полиса", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1505, category: ErrorCategory::Ingosstrakh, description: "ingos get tariff error", detail_ru: "Ингосстрах ошибка предварительного расчета", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1601, category: ErrorCategory::Renaissance, description: "renis create agreement error", detail_ru: "Ренессанс ошибка создания договора", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1602, category: ErrorCategory::Renaissance, description: "renis create payment link error", detail_ru: "Ренессанс ошибка создания ссылки на оплату", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1603, category: ErrorCategory::Renaissance, description: "renis check is paid error", detail_ru: "Истек срок оплаты полиса, процесс остановлен", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1604, category: ErrorCategory::Renaissance, description: "renis download policy error", detail_ru: "Ренессанс ошибка загрузки полиса", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_grouped_as_documented() {
        let mut codes: Vec<u32> = TABLE.iter().map(|e| e.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len());
        for e in TABLE {
            match e.code / 100 {
                15 => assert_eq!(e.category, ErrorCategory::Ingosstrakh, "{}", e.code),
                16 => assert_eq!(e.category, ErrorCategory::Renaissance, "{}", e.code),
                10 => assert_eq!(e.category, ErrorCategory::Phone, "{}", e.code),
                _ => {}
            }
            assert!(!e.customer_text_ru.is_empty(), "{}", e.code);
        }
    }

    #[test]
    fn lookup_knows_the_table_and_survives_unknown_codes() {
        let e = MustErrorCode::lookup(1421);
        assert_eq!(e.category, ErrorCategory::PolicyIssuing);
        assert_eq!(e.customer_text_ru, "Введите действующую Диагностическую Карту.");
        let u = MustErrorCode::lookup(4242);
        assert_eq!((u.code, u.category), (4242, ErrorCategory::Unknown));
    }
}
